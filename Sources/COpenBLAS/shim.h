#ifndef CURVALID_COPENBLAS_SHIM_H
#define CURVALID_COPENBLAS_SHIM_H
// Debian's libopenblas-dev installs cblas.h (with openblas_set_num_threads) on the default include path.
#include <cblas.h>
#endif
