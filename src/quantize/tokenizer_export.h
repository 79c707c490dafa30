#pragma once
// Writing a tokenizer as Hugging Face files (tokenizer.json, tokenizer_config.json), for checkpoints
// made from GGUF files, whose vocabulary lives in GGUF metadata.
#include "tokenizer/tokenizer.h"

#include <string>

namespace octet::quantize {

// chat_template_text: the model's Jinja template, copied verbatim into tokenizer_config.json.
void write_tokenizer_files(const tokenizer::Tokenizer& tokenizer, const std::string& chat_template_text,
                           const std::string& directory);

}  // namespace octet::quantize
