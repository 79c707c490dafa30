// llm.lm_head_precision and llm.embedding_precision: parsed from every source into the engine's
// options, and a bad value rejected naming the key and the allowed values.
#include "config_fixture.h"

#include <gtest/gtest.h>

namespace octet {
namespace {

using testing::error_of;
using testing::shipped_request;

TEST(VocabPrecisionSettings, DefaultsOverridesAndEnvironmentReachTheEngineOptions) {
  EngineOptions defaults = engine_options(load_config(shipped_request()));
  EXPECT_EQ(defaults.lm_head_precision, VocabPrecision::auto_select);
  EXPECT_EQ(defaults.embedding_precision, VocabPrecision::auto_select);

  EngineOptions set = engine_options(
      load_config(shipped_request("", {"llm.lm_head_precision=fp8", "llm.embedding_precision=bf16"})));
  EXPECT_EQ(set.lm_head_precision, VocabPrecision::fp8);
  EXPECT_EQ(set.embedding_precision, VocabPrecision::bf16);

  EngineOptions from_env = engine_options(load_config(shipped_request("", {}, {{"OCTET_LLM_LM_HEAD_PRECISION", "bf16"}})));
  EXPECT_EQ(from_env.lm_head_precision, VocabPrecision::bf16);
  EXPECT_EQ(vocab_precision_name(VocabPrecision::auto_select), "auto");
  EXPECT_EQ(parse_vocab_precision("fp8"), VocabPrecision::fp8);
}

TEST(VocabPrecisionSettings, BadValueNamesTheKeyAndTheChoices) {
  const std::string message = error_of([] { load_config(shipped_request("", {"llm.lm_head_precision=fp4"})); });
  for (const char* part : {"llm.lm_head_precision", "'fp4'", "allowed: auto, bf16, fp8"})
    EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' in: " << message;
  const std::string embedding = error_of([] { load_config(shipped_request("", {"llm.embedding_precision=int8"})); });
  EXPECT_NE(embedding.find("llm.embedding_precision"), std::string::npos) << embedding;
  EXPECT_NE(error_of([] { parse_vocab_precision("f32"); }).find("expected one of auto, bf16, fp8"), std::string::npos);
}

}  // namespace
}  // namespace octet
