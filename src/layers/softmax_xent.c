/* softmax_xent.c — softmax and the sparse categorical cross-entropy computed from logits, the
 * loss of the notebooks (`from_logits=True`). */
#include "internal.h"

#include <math.h>

int fm_argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) {
        if (v[i] > v[best]) best = i;
    }
    return best;
}

/* logits and probs are (B,C). Subtracting the row maximum keeps exp() in range; the loss uses
 * log-sum-exp directly rather than log(prob), so a confident wrong answer gives a large finite
 * loss instead of log(0). */
void softmax_forward(float *probs, const float *logits, int B, int C) {
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * C;
        float *p = probs + (size_t)b * C;
        float mx = z[0];
        for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
        double sum = 0.0;
        for (int c = 0; c < C; c++) {
            p[c] = expf(z[c] - mx);
            sum += p[c];
        }
        float inv = (float)(1.0 / sum);
        for (int c = 0; c < C; c++) p[c] *= inv;
    }
}

double softmax_xent_forward(float *probs, const float *logits, const uint8_t *labels, int B, int C,
                            int *correct) {
    double total = 0.0;
    int right = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * C;
        float *p = probs + (size_t)b * C;
        float mx = z[0];
        for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
        double sum = 0.0;
        for (int c = 0; c < C; c++) {
            p[c] = expf(z[c] - mx);
            sum += p[c];
        }
        float inv = (float)(1.0 / sum);
        for (int c = 0; c < C; c++) p[c] *= inv;
        /* loss = logsumexp(z) - z[y] = mx + log(sum) - z[y] */
        total += (double)mx + log(sum) - (double)z[labels[b]];
        if (fm_argmax(z, C) == labels[b]) right++;
    }
    if (correct) *correct = right;
    return total;
}

void softmax_xent_backward(float *dlogits, const float *probs, const uint8_t *labels, int B, int C) {
    float inv_b = 1.0f / (float)B;
    for (int b = 0; b < B; b++) {
        const float *p = probs + (size_t)b * C;
        float *d = dlogits + (size_t)b * C;
        for (int c = 0; c < C; c++) d[c] = p[c] * inv_b;
        d[labels[b]] -= inv_b;
    }
}

/* Label smoothing spreads s of the target's mass evenly over the C classes. The forward pass
 * reuses the plain one for probabilities and log-sum-exp, then moves the target: with t the
 * smoothed target, -sum(t*log p) = lse - (1-s)*z[y] - s/C*sum(z). */
double softmax_xent_smooth_forward(float *probs, const float *logits, const uint8_t *labels, int B,
                                   int C, float smoothing, int *correct) {
    double total = softmax_xent_forward(probs, logits, labels, B, C, correct);
    if (smoothing == 0.0f) return total;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * C;
        double sum_z = 0.0;
        for (int c = 0; c < C; c++) sum_z += z[c];
        total += (double)smoothing * z[labels[b]] - (double)smoothing / C * sum_z;
    }
    return total;
}

void softmax_xent_smooth_backward(float *dlogits, const float *probs, const uint8_t *labels, int B,
                                  int C, float smoothing) {
    const float inv_b = 1.0f / (float)B, spread = smoothing / (float)C;
    for (int b = 0; b < B; b++) {
        const float *p = probs + (size_t)b * C;
        float *d = dlogits + (size_t)b * C;
        for (int c = 0; c < C; c++) d[c] = (p[c] - spread) * inv_b;
        d[labels[b]] -= (1.0f - smoothing) * inv_b;
    }
}
