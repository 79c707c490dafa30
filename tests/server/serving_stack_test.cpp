// The step token budget `octet serve` gives the scheduler: server.max_batch_tokens when set, else
// (0, "auto") the budget for the backend the model runs on.
#include "server/serving_stack.h"

#include <gtest/gtest.h>

namespace octet::server {
namespace {

TEST(ServingStack, StepTokenBudgetIsTheSettingElseTheBackendsDefault) {
  EXPECT_EQ(step_token_budget(0, "cuda"), kGpuStepTokens);
  EXPECT_EQ(step_token_budget(0, "cpu"), kCpuStepTokens);
  EXPECT_EQ(step_token_budget(512, "cuda"), 512);
  EXPECT_EQ(step_token_budget(512, "cpu"), 512);
  EXPECT_GT(kGpuStepTokens, kCpuStepTokens);
}

}  // namespace
}  // namespace octet::server
