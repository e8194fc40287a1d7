// One thread count for our OpenMP kernels and the BLAS, so neither oversubscribes the other.
#include <omp.h>
#include "kernels.h"

#ifdef TEMPER_ACCELERATE
static void blas_set_threads(int) {}
#else
extern "C" void openblas_set_num_threads(int);
static void blas_set_threads(int n) { openblas_set_num_threads(n); }
#endif

namespace temper {

static int g_threads = 0;

void set_num_threads(int n) {
  if (n < 1) n = omp_get_num_procs();
  g_threads = n;
  omp_set_num_threads(n);
  blas_set_threads(n);
}

int num_threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

}  // namespace temper
