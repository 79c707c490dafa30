# CUDA backend: compiled into octet_core whenever nvcc is present (CI compiles it; only the GPU
# machine runs it). Without a GPU at run time the engine reports that and uses the CPU.
find_package(CUDAToolkit REQUIRED)
file(GLOB_RECURSE OCTET_CUDA_SOURCES CONFIGURE_DEPENDS
     ${CMAKE_SOURCE_DIR}/src/backend/cuda/*.cu ${CMAKE_SOURCE_DIR}/src/backend/cuda/*.cpp)
target_sources(octet_core PRIVATE ${OCTET_CUDA_SOURCES})
target_link_libraries(octet_core PUBLIC CUDA::cudart_static CUDA::cublasLt)
target_compile_definitions(octet_core PUBLIC OCTET_HAVE_CUDA=1)
# Kernels (.cu) are C++17, the dialect CMake 3.25 knows for nvcc; the host side of the backend is
# ordinary C++20 (.cpp) that calls their launch wrappers.
set_property(TARGET octet_core PROPERTY CUDA_STANDARD 17)
target_compile_options(octet_core PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -lineinfo>)
