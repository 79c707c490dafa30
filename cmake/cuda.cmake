# CUDA backend: built whenever nvcc is present (CI compiles it; only the GPU machine runs it).
if(NOT CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "52")
  set(CMAKE_CUDA_ARCHITECTURES 90a 89)
endif()
file(GLOB_RECURSE OCTET_CUDA_SOURCES CONFIGURE_DEPENDS
     ${CMAKE_SOURCE_DIR}/src/backend/cuda/*.cu ${CMAKE_SOURCE_DIR}/src/backend/cuda/*.cpp)
if(OCTET_CUDA_SOURCES)
  find_package(CUDAToolkit REQUIRED)
  add_library(octet_cuda STATIC ${OCTET_CUDA_SOURCES})
  target_link_libraries(octet_cuda PUBLIC octet_core CUDA::cudart CUDA::cublasLt)
  target_compile_definitions(octet_core PUBLIC OCTET_HAVE_CUDA=1)
endif()
