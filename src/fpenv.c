/* fpenv.c — the floating-point mode the library computes in: subnormal numbers flushed to zero
 * (x86 FTZ and DAZ), set for the duration of each entry point and in the pool's workers. */
#include "internal.h"

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
/* MXCSR bits: DAZ (6) reads subnormal inputs as zero, FTZ (15) writes zero for subnormal results. */
#define FM_MXCSR_FLUSH ((1u << 6) | (1u << 15))

fm_fpenv fm_fpenv_enter(void) {
    unsigned saved = _mm_getcsr();
    if ((saved & FM_MXCSR_FLUSH) != FM_MXCSR_FLUSH) _mm_setcsr(saved | FM_MXCSR_FLUSH);
    return saved;
}

void fm_fpenv_leave(fm_fpenv saved) {
    if (_mm_getcsr() != saved) _mm_setcsr(saved);
}

int fm_fpenv_flushing(void) { return (_mm_getcsr() & FM_MXCSR_FLUSH) == FM_MXCSR_FLUSH; }
#else
fm_fpenv fm_fpenv_enter(void) { return 0; }
void fm_fpenv_leave(fm_fpenv saved) { (void)saved; }
int fm_fpenv_flushing(void) { return 0; }
#endif
