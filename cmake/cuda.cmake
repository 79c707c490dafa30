# CUDA backend: compiled into octet_core whenever nvcc is present (CI compiles it; only a GPU machine
# runs it), so the `octet` executable and `octet_tests` link it through octet_core. Without a GPU at
# run time, probe_cuda() says so and the tests that need one skip.
#
# Architectures (default set in CMakeLists.txt: "90a;89"): 90a is Hopper with its arch-specific
# instructions, which CMake passes as --generate-code=arch=compute_90a,code=[compute_90a,sm_90a] (the
# -gencode form; see .library/device/HOPPER.md); 89 is Ada, whose compute_89 PTX also JIT-compiles on
# newer GPUs. Both have FP8 tensor cores, which the kernels assume.
find_package(CUDAToolkit REQUIRED)
file(GLOB_RECURSE OCTET_CUDA_SOURCES CONFIGURE_DEPENDS
     ${CMAKE_SOURCE_DIR}/src/backend/cuda/*.cu ${CMAKE_SOURCE_DIR}/src/backend/cuda/*.cpp)
target_sources(octet_core PRIVATE ${OCTET_CUDA_SOURCES})
target_link_libraries(octet_core PUBLIC CUDA::cudart_static CUDA::cublasLt)
target_compile_definitions(octet_core PUBLIC OCTET_HAVE_CUDA=1)
# Kernels (.cu) are C++17, the dialect CMake 3.25 knows for nvcc; the host side of the backend is
# ordinary C++20 (.cpp) that calls their launch wrappers.
set_property(TARGET octet_core PROPERTY CUDA_STANDARD 17)
target_compile_options(octet_core PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -lineinfo -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter>)

# GPU micro-benchmarks (device ceilings, FP8 GEMV variants): octet_gpu_bench [--quick].
add_executable(octet_gpu_bench ${CMAKE_SOURCE_DIR}/bench/gpu/gpu_bench.cpp)
target_link_libraries(octet_gpu_bench PRIVATE octet_core)
set_target_properties(octet_gpu_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
