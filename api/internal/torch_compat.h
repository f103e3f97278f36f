#ifndef DCPLAN_API_INTERNAL_TORCH_COMPAT_H_
#define DCPLAN_API_INTERNAL_TORCH_COMPAT_H_

// The one place where dcplan's sources tell LibTorch 2.x (the default, from
// tools/setup's venv) and Debian's LibTorch 1.13 (--config=torch1) apart.
//
// @libtorch//:torch defines DCPLAN_LIBTORCH_MAJOR as the major version it
// links. Debian's 1.13 headers sit in /usr/include, a system directory every
// compile searches; the venv's 2.x headers come first, but a header that
// only 1.13 has would still be found there. The static_assert turns such a
// mix-up (or a venv holding another LibTorch) into a compile error rather
// than a silent ABI mismatch.

#include <torch/version.h>

#ifndef DCPLAN_LIBTORCH_MAJOR
#error "compile LibTorch code against @libtorch//:torch (it defines DCPLAN_LIBTORCH_MAJOR)"
#endif

static_assert(TORCH_VERSION_MAJOR == DCPLAN_LIBTORCH_MAJOR,
              "the LibTorch headers found are not those of the LibTorch linked (@libtorch//:torch)");

// c10d: since 2.0 a c10d::ProcessGroup dispatches to one c10d::Backend per
// device type, and ProcessGroupGloo is such a Backend (in 1.13 it was itself
// the ProcessGroup).
#define DCPLAN_TORCH_C10D_HAS_BACKENDS (TORCH_VERSION_MAJOR >= 2)

// Scalar types added in 2.x: uint16, uint32, uint64 (2.3) and the float8
// kinds float8_e4m3fn, float8_e5m2 (2.1), float8_e4m3fnuz, float8_e5m2fnuz
// (2.2). 1.13 has none of them.
#define DCPLAN_TORCH_HAS_FLOAT8_AND_WIDE_UNSIGNED (TORCH_VERSION_MAJOR >= 2)

#endif  // DCPLAN_API_INTERNAL_TORCH_COMPAT_H_
