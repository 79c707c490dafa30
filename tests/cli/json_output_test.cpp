// --json output with text that is not UTF-8: a reply cut inside a character by max_tokens ended the
// command with nlohmann::json's type_error 316 instead of printing the object.
#include "cli/json_output.h"

#include <gtest/gtest.h>

namespace octet::cli {
namespace {

TEST(JsonOutput, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  const nlohmann::json value = {{"text", "iron \xF0\x9F"}, {"model", "/models/\xFF.gguf"}};
  EXPECT_THROW((void)value.dump(2), nlohmann::json::type_error);
  const std::string out = json_output(value);
  EXPECT_NE(out.find("\"text\": \"iron \xEF\xBF\xBD\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"/models/\xEF\xBF\xBD.gguf\""), std::string::npos) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["text"], "iron \xEF\xBF\xBD");
  // Valid text is written as it is, non-ASCII included.
  EXPECT_EQ(json_output(nlohmann::json{{"t", "wörld"}}), "{\n  \"t\": \"wörld\"\n}");
}

}  // namespace
}  // namespace octet::cli
