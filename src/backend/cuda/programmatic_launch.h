#pragma once
// Which streams launch the backend's kernels as programmatic dependent launches (PDL: a kernel's
// blocks are scheduled while the kernel before it in the stream finishes; see launch.cuh). The
// backend sets its stream's setting when it makes the stream (on unless OCTET_CUDA_PDL=0) and
// forgets it before destroying it. Other streams (tests calling launch wrappers directly, unless
// they set one) launch plainly. Devices below compute capability 9.0 have no PDL: there a stream's
// setting is always off.
#include <cuda_runtime.h>

namespace octet::backend::cuda {

// Whether `device` can launch programmatically (compute capability >= 9.0).
bool device_has_programmatic_launches(int device);
// What set_programmatic_launches gave `stream`; false for a stream never set.
bool programmatic_launches(cudaStream_t stream);
// on is taken as off where the current device has no PDL.
void set_programmatic_launches(cudaStream_t stream, bool on);
// Before the stream is destroyed: a later stream may get the same handle.
void forget_programmatic_launches(cudaStream_t stream);

}  // namespace octet::backend::cuda
