// `octet quantize` and `octet query --model DIR` run as a user would: the summary line, the progress
// bar with GB/s on stderr, exclusions in the written config, the directory answering a query, and
// one-line errors for bad input.
#include "support/model_files.h"
#include "support/run_octet.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using octet::testing::run_octet;

TEST(CliQuantize, GgufToFp8DirectoryThenQuery) {
  OCTET_REQUIRE_SMOLLM2(gguf);
  const fs::path out = fs::temp_directory_path() / ("octet_cli_quantize_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const auto r = run_octet("quantize " + gguf + " " + out.string() + " --exclude 'model.layers.0.*' --exclude 'model.layers.29.*'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("FP8_PER_CHANNEL_PER_TOKEN (196 FP8 layers, 14 kept BF16)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("GB/s"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("100%"), std::string::npos) << r.output;  // the progress bar's last state
  std::ifstream hf_quant(out / "hf_quant_config.json");
  const auto excluded = nlohmann::json::parse(hf_quant).at("quantization").at("exclude_modules");
  EXPECT_EQ(excluded, (nlohmann::json{"lm_head", "model.layers.0.*", "model.layers.29.*"}));

  // Two BF16 layers among FP8 ones give another model than the in-memory one: it must load and
  // answer, but which words its greedy answer picks is as fragile as any FP8 rounding
  // (docs/ACCURACY.md), so only the all-FP8 directory below is held to "Paris".
  const auto mixed = run_octet("query --model " + out.string() + " 'What is the capital of France?' --temperature 0 --max-tokens 12");
  EXPECT_EQ(mixed.exit_code, 0) << mixed.output;
  EXPECT_NE(mixed.output.find("prompt tokens 37 · generated "), std::string::npos) << mixed.output;
  const auto again = run_octet("quantize " + gguf + " " + out.string());
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("not an empty directory"), std::string::npos) << again.output;
  fs::remove_all(out);

  // The weight-only directory holds the in-memory path's codes and scales bit for bit: its greedy
  // answer is Cli.GreedyQueryAboutFranceMentionsParis's.
  ASSERT_EQ(run_octet("quantize " + gguf + " " + out.string()).exit_code, 0);
  const auto query = run_octet("query --model " + out.string() + " 'What is the capital of France?' --temperature 0 --max-tokens 12");
  EXPECT_EQ(query.exit_code, 0) << query.output;
  EXPECT_NE(query.output.find("Paris"), std::string::npos) << query.output;
  fs::remove_all(out);
}

TEST(CliQuantize, ModelDirectoryWithoutConfigIsOneLine) {
  const fs::path empty = fs::temp_directory_path() / ("octet_cli_empty_" + std::to_string(::getpid()));
  fs::create_directories(empty);
  const auto r = run_octet("query --model " + empty.string() + " hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("needs a config.json"), std::string::npos) << r.output;
  fs::remove_all(empty);
}

}  // namespace
