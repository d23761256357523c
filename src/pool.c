/* pool.c — the library's threads: a small pool that runs numbered tasks on its workers and the
 * calling thread together. Tasks are claimed one at a time, so a worker the OS has not scheduled
 * yet (a busy machine) delays nothing: the caller runs the tasks it did not claim; and when a
 * worker that did claim one gets descheduled, the caller runs alone for a while. Workers spin
 * briefly between jobs, because a training step hands them several jobs a few microseconds apart,
 * then sleep. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* How long an idle worker spins before it sleeps, and a waiting caller before it yields: longer
 * than the gaps between the jobs of a training step (~20 us of serial work), short enough not
 * to take much from other processes on a busy machine. */
#define SPIN_SECONDS 50e-6

/* state packs the job's generation (high 32 bits) and the range of its unclaimed tasks, [lo, hi)
 * (16 bits each), so that one compare-and-swap both claims a task and checks that the job is
 * still the current one. The caller claims from the front and the workers from the back: with
 * two threads and jobs of the same shape, each thread gets the same tasks step after step when
 * both keep up (the caller the first half, the worker the second), so the rows of weights and
 * optimizer moments a thread updates stay in its own core's cache; a thread that falls behind
 * still has its tasks taken by the other. A finished job is closed (lo = CLOSED) before the next
 * one's fields are written, and all these accesses are sequentially consistent: a claim that
 * succeeds therefore read the fields of its own job. */
#define CLOSED 0xffffu
#define MAX_TASKS 0xfffe

struct fm_pool {
    int threads;
    pthread_t *workers;
    _Atomic uint64_t state;
    _Atomic(fm_task_fn) fn;
    _Atomic(void *) ctx;
    _Atomic int done;
    _Atomic int sleepers;
    _Atomic int stop;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    double solo_until; /* the caller runs jobs alone until then (see fm_pool_run) */
    int unhelped;      /* jobs in a row whose every task the caller ran itself */
};

static uint32_t gen_of(uint64_t s) { return (uint32_t)(s >> 32); }
static uint32_t lo_of(uint64_t s) { return (uint32_t)(s >> 16) & 0xffffu; }
static uint32_t hi_of(uint64_t s) { return (uint32_t)s & 0xffffu; }
static uint64_t pack(uint32_t gen, uint32_t lo, uint32_t hi) {
    return (uint64_t)gen << 32 | (uint64_t)lo << 16 | hi;
}

/* Claims and runs tasks of generation gen, from the front of the range (the caller) or from its
 * back (workers), until none is left or the job has changed. */
static int work_on(fm_pool *p, uint32_t gen, int from_front) {
    for (int ran = 0;; ran++) {
        uint64_t s = atomic_load(&p->state);
        uint32_t lo = lo_of(s), hi = hi_of(s);
        if (gen_of(s) != gen || lo == CLOSED || lo >= hi) return ran;
        fm_task_fn fn = atomic_load(&p->fn);
        void *ctx = atomic_load(&p->ctx);
        uint32_t task = from_front ? lo : hi - 1;
        uint64_t claimed = from_front ? pack(gen, lo + 1, hi) : pack(gen, lo, hi - 1);
        if (!atomic_compare_exchange_weak(&p->state, &s, claimed)) {
            ran--;
            continue;
        }
        fn(ctx, (int)task);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static void *worker_main(void *arg) {
    fm_pool *p = arg;
    (void)fm_fpenv_enter(); /* for the thread's life: it computes only for the library */
    /* The generation the pool was created with, not the current one: a job published before
     * this thread got going is still one to help with (a closed one is simply found closed). */
    uint32_t seen = 0;
    while (!atomic_load(&p->stop)) {
        double t0 = fm_now_seconds();
        uint32_t gen;
        for (int spins = 0;; spins++) {
            gen = gen_of(atomic_load(&p->state));
            if (gen != seen || atomic_load(&p->stop)) break;
            if ((spins & 255) == 255 && fm_now_seconds() - t0 > SPIN_SECONDS) {
                /* Announce the sleep before checking again under the lock: the caller publishes a
                 * job before it reads sleepers, so one of the two sees the other. */
                atomic_fetch_add(&p->sleepers, 1);
                pthread_mutex_lock(&p->lock);
                while (gen_of(atomic_load(&p->state)) == seen && !atomic_load(&p->stop)) {
                    pthread_cond_wait(&p->wake, &p->lock);
                }
                pthread_mutex_unlock(&p->lock);
                atomic_fetch_sub(&p->sleepers, 1);
                t0 = fm_now_seconds();
            }
            CPU_RELAX();
        }
        if (atomic_load(&p->stop)) break;
        seen = gen;
        (void)work_on(p, gen, 0);
    }
    return NULL;
}

fm_pool *fm_pool_create(int threads) {
    if (threads < 1) threads = 1;
    fm_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->threads = threads;
    atomic_init(&p->state, pack(0, CLOSED, 0));
    atomic_init(&p->fn, NULL);
    atomic_init(&p->ctx, NULL);
    atomic_init(&p->done, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, 0);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (threads > 1) {
        p->workers = calloc((size_t)threads - 1, sizeof *p->workers);
        if (!p->workers) {
            fm_pool_free(p);
            return NULL;
        }
        for (int i = 0; i < threads - 1; i++) {
            if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
                p->threads = i + 1; /* run with the workers that did start */
                break;
            }
        }
    }
    return p;
}

void fm_pool_free(fm_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; p->workers && i < p->threads - 1; i++) pthread_join(p->workers[i], NULL);
    free(p->workers);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p);
}

int fm_pool_threads(const fm_pool *p) { return p ? p->threads : 1; }

/* A job whose caller waited this much longer for a worker than it worked itself means the
 * worker was descheduled holding a task (a busy machine); the caller then runs the next jobs
 * alone for SOLO_SECONDS before trying again. Results are the same either way. */
#define STALL_SECONDS 100e-6
#define UNHELPED_JOBS 8
#define SOLO_SECONDS 20e-3

static void pool_run(fm_pool *p, int n_tasks, fm_task_fn fn, void *ctx);

void fm_pool_run(fm_pool *p, int n_tasks, fm_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    fm_fpenv saved = fm_fpenv_enter();
    pool_run(p, n_tasks, fn, ctx);
    fm_fpenv_leave(saved);
}

static void pool_run(fm_pool *p, int n_tasks, fm_task_fn fn, void *ctx) {
    double start = p ? fm_now_seconds() : 0.0;
    if (!p || p->threads == 1 || n_tasks == 1 || n_tasks > MAX_TASKS || start < p->solo_until) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t);
        return;
    }
    /* The previous job is closed and every one of its tasks has finished, so no worker uses
     * these fields until the new generation is published. */
    atomic_store(&p->fn, fn);
    atomic_store(&p->ctx, ctx);
    atomic_store(&p->done, 0);
    uint32_t gen = gen_of(atomic_load(&p->state)) + 1;
    atomic_store(&p->state, pack(gen, 0, (uint32_t)n_tasks));
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
    int ran = work_on(p, gen, 1);
    /* Wait for the tasks that workers claimed and are still running. */
    double t0 = fm_now_seconds();
    int waited_long = 0;
    for (int spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < n_tasks; spins++) {
        if ((spins & 255) == 255 && fm_now_seconds() - t0 > SPIN_SECONDS) {
            waited_long = 1;
            sched_yield();
        } else {
            CPU_RELAX();
        }
    }
    atomic_store(&p->state, pack(gen, CLOSED, 0));
    /* The caller ran every task itself: the workers did not get a core in time (the machine is
     * busy, or they were asleep). After a few such jobs in a row, stop waking them for a while:
     * each wake costs a system call here, and on a busy machine a worker that wakes on the
     * caller's own core only takes time from it. */
    p->unhelped = ran == n_tasks ? p->unhelped + 1 : 0;
    if (p->unhelped >= UNHELPED_JOBS) {
        p->unhelped = 0;
        p->solo_until = fm_now_seconds() + SOLO_SECONDS;
    }
    if (waited_long) {
        double end = fm_now_seconds();
        if (end - t0 > STALL_SECONDS && end - t0 > t0 - start) p->solo_until = end + SOLO_SECONDS;
    }
}
