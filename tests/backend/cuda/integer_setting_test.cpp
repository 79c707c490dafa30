// integer_setting, the parser of the CUDA backend's whole-number environment settings (host code: runs without a
// GPU wherever the CUDA component is built): the fallback when unset or empty, the value when inside the bounds
// (both bounds included), and a refusal naming the variable, the value and the expected range otherwise.
#include "support/error_text.h"
#include "support/scoped_environment.h"

#include <gtest/gtest.h>

#if OCTET_HAVE_CUDA
#include "backend/cuda/integer_setting.h"

namespace octet::backend {
namespace {

constexpr const char* kVariable = "OCTET_TEST_INTEGER_SETTING";

int64_t read() { return cuda::integer_setting(kVariable, 8, 1, 4096, "a row count"); }

TEST(CudaIntegerSetting, FallbackValuesAndRefusals) {
  {
    const testing::ScopedEnvironment unset(kVariable, nullptr);
    EXPECT_EQ(read(), 8);
  }
  for (const auto& [text, value] : {std::pair{"", int64_t{8}}, std::pair{"1", int64_t{1}}, std::pair{"64", int64_t{64}},
                                    std::pair{"4096", int64_t{4096}}}) {
    const testing::ScopedEnvironment set(kVariable, text);
    EXPECT_EQ(read(), value) << "'" << text << "'";
  }
  for (const char* bad : {"0", "4097", "-1", "8x", "x8", "1e3", "99999999999999999999"}) {
    const testing::ScopedEnvironment set(kVariable, bad);
    testing::expect_parts(testing::error_of([] { read(); }),
                          {kVariable, std::string("'") + bad + "'", "expected a row count from 1 to 4096"});
  }
}

}  // namespace
}  // namespace octet::backend
#endif
