#pragma once
// GPU tests skip, saying why, where no GPU can be used.
#include "backend/device.h"

#include <gtest/gtest.h>

#define OCTET_REQUIRE_GPU()                                                            \
  do {                                                                                 \
    const ::octet::backend::CudaStatus status_ = ::octet::backend::probe_cuda();      \
    if (!status_.available) GTEST_SKIP() << "no GPU: " << status_.reason;              \
  } while (0)
