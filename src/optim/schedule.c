/* schedule.c — the learning rate at each step of a run: constant, step, cosine or one-cycle,
 * with linear warm-up. Pure functions of the step number, so a run can be resumed or tested
 * without replaying it. */
#include "internal.h"

#include <math.h>

#define PI 3.14159265358979323846

/* From a at pct 0 to b at pct 1 along half a cosine wave (PyTorch's anneal_cos). */
static double cos_anneal(double a, double b, double pct) {
    return b + (a - b) / 2.0 * (1.0 + cos(PI * pct));
}

float fm_schedule_lr(const fm_schedule_params *s, float base, long t, long total) {
    long warm = s->warmup_steps;
    if (s->kind == FM_SCHED_ONECYCLE) {
        /* Smith's one cycle as PyTorch's OneCycleLR (anneal_strategy cos, three_phase False):
         * up from base/25 to base over the warm-up (30% of the run when none is given), then down
         * to base/25/1e4 by the last step. */
        if (warm <= 0) warm = (long)(0.3 * (double)total);
        if (warm < 1) warm = 1;
        double initial = base / 25.0, final = initial / 1e4;
        if (t < warm) return (float)cos_anneal(initial, base, (double)t / (double)warm);
        long rest = total - warm;
        double pct = rest > 1 ? (double)(t - warm) / (double)(rest - 1) : 1.0;
        return (float)cos_anneal(base, final, pct > 1.0 ? 1.0 : pct);
    }
    /* The others warm up linearly to base: step t of the warm-up uses base*(t+1)/warm. */
    if (t < warm) return (float)((double)base * (double)(t + 1) / (double)warm);
    switch (s->kind) {
    case FM_SCHED_STEP: {
        long k = s->step_steps > 0 ? t / s->step_steps : 0;
        return (float)((double)base * pow((double)s->gamma, (double)k));
    }
    case FM_SCHED_COSINE: {
        /* From base right after the warm-up to 0 at the step after the last. */
        long span = total - warm;
        double pct = span > 0 ? (double)(t - warm) / (double)span : 1.0;
        return (float)cos_anneal(base, 0.0, pct > 1.0 ? 1.0 : pct);
    }
    default: return base;
    }
}
