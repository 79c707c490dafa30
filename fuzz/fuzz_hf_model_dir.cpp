// libFuzzer target: opening a Hugging Face model directory (config.json, the tokenizer files,
// generation_config.json, hf_quant_config.json, safetensors weights and index) written from arbitrary
// bytes, then what `octet query --model DIR` does with it: the tokenizer and chat template, the model
// built on the CPU backend in FP8, and one forward pass. The input holds the files in kFiles' order,
// separated by kSeparator (an empty part: the file is absent). octet::Error is the accepted failure;
// any other exception, a crash, a sanitizer report, a leak or an out-of-memory is a finding.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "common/error.h"
#include "fuzz_input.h"
#include "scratch_directory.h"
#include "model/llama_model.h"
#include "model/model_files.h"

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSeparator = "\n=octet-fuzz-file=\n";
const std::vector<const char*> kFiles = {"config.json",          "tokenizer.json",       "tokenizer_config.json",
                                  "generation_config.json", "hf_quant_config.json", "model.safetensors",
                                  "model.safetensors.index.json"};
// The forward pass runs only for models this small (each input must stay fast); every model is
// opened, whatever its size.
constexpr int64_t kMaxRunParameters = int64_t{1} << 20;

fs::path work_directory() {
  static const fs::path dir = octet::fuzz::scratch_directory("octet-fuzz-hf");
  return dir;
}

void write_files(const fs::path& dir, std::string_view input) {
  octet::fuzz::empty_directory(dir);
  octet::fuzz::write_parts(dir, octet::fuzz::split_parts(input, kSeparator), kFiles);
}

void run_once(const octet::model::ModelFiles& files) {
  const auto& tokenizer = *files.tokenizer;
  const auto ids = tokenizer.encode("<|im_start|>user\nHello, wörld 123!<|im_end|>\n", true);
  (void)tokenizer.decode(ids);
  (void)tokenizer.apply_chat_template({{"user", "How to craft iron tools?"}}, true);
  if (files.config.parameter_count() > kMaxRunParameters) return;
  auto backend = octet::backend::make_cpu_backend(1);
  octet::model::ModelOptions options;
  options.max_context = 8;
  octet::model::LlamaModel model(files.config, files.weights.get(), *backend, options);
  octet::backend::TokenBatch batch;
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < 3; ++i) {
    batch.tokens.push_back(static_cast<int32_t>(i % files.config.vocab));
    batch.positions.push_back(i);
    batch.slots.push_back(0);
    rows.push_back(i);
  }
  std::vector<float> logits(rows.size() * static_cast<size_t>(files.config.vocab));
  model.forward(batch, rows, logits.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path dir = work_directory();
  write_files(dir, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    (void)octet::model::read_model_config(dir.string());
  } catch (const octet::Error&) {
  }
  try {
    const auto files = octet::model::open_model_files(dir.string());
    run_once(files);
  } catch (const octet::Error&) {
  }
  return 0;
}
