// Damaged and hostile GGUF files: each must fail with an octet::Error that names the file, the key
// or tensor at fault and what was expected versus found; none may crash or allocate wildly.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "formats/gguf.h"
#include "gguf_test_writer.h"

namespace octet::gguf {
namespace {

namespace tw = testing;
using tw::parse_error;

constexpr uint64_t kHuge = uint64_t{1} << 60;

void expect_message(const std::string& message, std::initializer_list<std::string> parts) {
  EXPECT_NE(message, "<no error>");
  if (std::getenv("OCTET_PRINT_ERRORS")) std::printf("%s\n", message.c_str());
  for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
}

tw::GgufWriter small_model() {
  tw::GgufWriter writer;
  writer.add("general.architecture", tw::str("llama"));
  writer.add("llama.block_count", tw::u32(1));
  writer.add("tokenizer.ggml.tokens", tw::array(ValueType::STRING, {tw::str("a"), tw::str("b")}));
  writer.add("t.nested", tw::array(ValueType::ARRAY, {tw::array(ValueType::FLOAT32, {tw::f32(1.0f)})}));
  writer.add_f32_tensor("norm", {4}, {1, 2, 3, 4});
  writer.add_tensor("q", {32, 2}, TensorType::Q4_0, std::vector<uint8_t>(36, 0x11));
  return writer;
}

TEST(GgufDamaged, EveryTruncationIsAnErrorNamingTheFile) {
  const auto bytes = small_model().build();
  ASSERT_EQ(parse_error(bytes), "<no error>");
  for (size_t size = 0; size < bytes.size(); ++size) {
    const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(size));
    const std::string message = parse_error(prefix, "cut.gguf");
    EXPECT_NE(message, "<no error>") << "prefix of " << size << " bytes parsed";
    EXPECT_EQ(message.rfind("cut.gguf: ", 0), 0u) << message;
  }
}

TEST(GgufDamaged, TruncationInsideAValueNamesTheKey) {
  const auto bytes = small_model().build();
  // The file is cut inside the tokens array (its key appears before the cut, its end after).
  const std::string key = "tokenizer.ggml.tokens";
  const auto it = std::search(bytes.begin(), bytes.end(), key.begin(), key.end());
  const size_t cut = static_cast<size_t>(it - bytes.begin()) + key.size() + 4 + 8 + 8;  // type, count, 1st length
  const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
  expect_message(parse_error(prefix), {"damaged.gguf", "'tokenizer.ggml.tokens'"});
}

TEST(GgufDamaged, HeaderProblems) {
  expect_message(parse_error({'G', 'G', 'U'}), {"damaged.gguf", "too small"});
  std::vector<uint8_t> bytes = small_model().build();
  bytes[0] = 'X';
  expect_message(parse_error(bytes), {"not a GGUF file", "magic"});

  tw::GgufWriter v1 = small_model();
  v1.version = 1;
  expect_message(parse_error(v1.build()), {"damaged.gguf", "unsupported GGUF version 1"});
  tw::GgufWriter v7 = small_model();
  v7.version = 7;
  expect_message(parse_error(v7.build()), {"unsupported GGUF version 7", "expected 2 or 3"});
  tw::GgufWriter big_endian = small_model();
  big_endian.version = 0x03000000;
  expect_message(parse_error(big_endian.build()), {"big-endian"});
}

TEST(GgufDamaged, AbsurdCounts) {
  tw::GgufWriter kv = small_model();
  kv.kv_count_override = kHuge;
  expect_message(parse_error(kv.build()), {"damaged.gguf", "metadata entries", std::to_string(kHuge)});
  tw::GgufWriter tensors = small_model();
  tensors.tensor_count_override = kHuge;
  expect_message(parse_error(tensors.build()), {"damaged.gguf", "tensors", std::to_string(kHuge)});
  tw::GgufWriter more_tensors = small_model();
  more_tensors.tensor_count_override = 3;  // one more than written: runs into the data section
  EXPECT_NE(parse_error(more_tensors.build()), "<no error>");

  tw::GgufWriter array;
  array.add_raw("tokenizer.ggml.tokens", 9, tw::Bytes().u32(8).u64(kHuge));
  expect_message(parse_error(array.build()), {"'tokenizer.ggml.tokens'", "array claims", std::to_string(kHuge)});
  tw::GgufWriter scalar_array;
  scalar_array.add_raw("t.scores", 9, tw::Bytes().u32(6).u64(1000).f32(1.0f));  // 1000 floats, 4 bytes given
  expect_message(parse_error(scalar_array.build()), {"'t.scores'", "1000 elements of FLOAT32"});
}

TEST(GgufDamaged, AbsurdStringLengths) {
  tw::GgufWriter value;
  value.add_raw("general.name", 8, tw::Bytes().u64(kHuge).raw({'a', 'b'}));
  expect_message(parse_error(value.build()), {"damaged.gguf", "'general.name'", std::to_string(kHuge), "bytes remain"});

  tw::GgufWriter in_array;
  in_array.add_raw("tokenizer.ggml.merges", 9, tw::Bytes().u32(8).u64(2).string("a b").u64(kHuge));
  expect_message(parse_error(in_array.build()), {"'tokenizer.ggml.merges'", std::to_string(kHuge)});

  std::vector<uint8_t> key = small_model().build();
  const uint64_t length = kHuge;
  std::memcpy(key.data() + 24, &length, 8);  // the first key's length field
  expect_message(parse_error(key), {"key of metadata entry #0", std::to_string(kHuge), "limit"});

  tw::GgufWriter tensor_name;
  tensor_name.add_tensor(tw::TestTensor{std::string(70000, 'x'), {1}, 0, {0, 0, 0, 0}, std::nullopt});
  expect_message(parse_error(tensor_name.build()), {"name of tensor #0", "70000"});
}

TEST(GgufDamaged, BadValues) {
  tw::GgufWriter unknown_type;
  unknown_type.add_raw("t.mystery", 13, tw::Bytes().u64(0));
  expect_message(parse_error(unknown_type.build()), {"'t.mystery'", "unknown value type 13"});

  tw::GgufWriter unknown_element;
  unknown_element.add_raw("t.list", 9, tw::Bytes().u32(42).u64(1).u8(0));
  expect_message(parse_error(unknown_element.build()), {"'t.list'", "element type 42"});

  Value two = tw::boolean(true);
  two.data = uint64_t{2};  // written as the byte 2
  tw::GgufWriter bad_bool;
  bad_bool.add("tokenizer.ggml.add_bos_token", two);
  expect_message(parse_error(bad_bool.build()), {"'tokenizer.ggml.add_bos_token'", "BOOL", "0 or 1", "found 2"});
  tw::GgufWriter bad_bool_in_array;
  bad_bool_in_array.add("t.flags", tw::array(ValueType::BOOL, {tw::boolean(false), two}));
  expect_message(parse_error(bad_bool_in_array.build()), {"'t.flags'", "found 2"});

  Value deep = tw::array(ValueType::UINT8, {tw::u8(1)});
  for (int level = 0; level < 20; ++level) deep = tw::array(ValueType::ARRAY, {deep});
  tw::GgufWriter nested;
  nested.add("t.deep", deep);
  expect_message(parse_error(nested.build()), {"'t.deep'", "nested deeper"});
}

TEST(GgufDamaged, DuplicateKeysAndTensorNames) {
  tw::GgufWriter keys = small_model();
  keys.add("llama.block_count", tw::u32(2));
  expect_message(parse_error(keys.build()), {"damaged.gguf", "duplicate metadata key 'llama.block_count'"});
  tw::GgufWriter tensors = small_model();
  tensors.add_f32_tensor("norm", {1}, {0});
  expect_message(parse_error(tensors.build()), {"damaged.gguf", "duplicate tensor name 'norm'"});
}

TEST(GgufDamaged, BadAlignment) {
  for (uint32_t alignment : {0u, 3u, 48u}) {
    tw::GgufWriter writer;
    writer.add("general.alignment", tw::u32(alignment));
    expect_message(parse_error(writer.build()), {"'general.alignment'", "power of two", std::to_string(alignment)});
  }
  tw::GgufWriter wrong_type;
  wrong_type.add("general.alignment", tw::str("32"));
  expect_message(parse_error(wrong_type.build()), {"'general.alignment'", "found STRING"});
}

TEST(GgufDamaged, BadShapesAndTypes) {
  auto tensor_error = [](tw::TestTensor tensor) {
    tw::GgufWriter writer;
    writer.add_tensor(std::move(tensor));
    return parse_error(writer.build());
  };
  expect_message(tensor_error({"too.many", {1, 1, 1, 1, 1}, 0, {0, 0, 0, 0}, std::nullopt}),
                 {"'too.many'", "5 dimensions", "at most 4"});
  expect_message(tensor_error({"huge", {uint64_t{1} << 32, uint64_t{1} << 32, 2}, 0, {}, std::nullopt}),
                 {"'huge'", "overflow", "[4294967296, 4294967296, 2]"});
  expect_message(tensor_error({"huge.bytes", {uint64_t{1} << 62}, 28, {}, std::nullopt}),  // F64: 2^65 bytes
                 {"'huge.bytes'", "byte size overflows"});
  expect_message(tensor_error({"odd.row", {33, 2}, 2, std::vector<uint8_t>(54), std::nullopt}),
                 {"'odd.row'", "Q4_0", "row length 33", "block size 32"});
  expect_message(tensor_error({"kquant", {128}, 12, std::vector<uint8_t>(144), std::nullopt}),
                 {"'kquant'", "Q4_K", "block size 256"});
  expect_message(tensor_error({"strange", {4}, 99, std::vector<uint8_t>(16), std::nullopt}),
                 {"'strange'", "unknown tensor type 99"});
}

TEST(GgufDamaged, TensorRangesOutsideTheFile) {
  auto with_offset = [](uint64_t offset) {
    tw::GgufWriter writer = small_model();
    writer.add_tensor(tw::TestTensor{"late", {8}, 0, std::vector<uint8_t>(32), offset});
    return parse_error(writer.build());
  };
  expect_message(with_offset(uint64_t{1} << 40), {"damaged.gguf", "'late'", "32 data bytes at offset 1099511627776"});
  expect_message(with_offset(std::numeric_limits<uint64_t>::max() - 31), {"'late'", "past the end"});  // end overflows
  expect_message(with_offset(36), {"'late'", "offset 36", "alignment 32"});

  // The file is cut inside the last tensor's data.
  std::vector<uint8_t> bytes = small_model().build();
  bytes.resize(bytes.size() - 10);
  expect_message(parse_error(bytes), {"'q'", "Q4_0", "[32, 2]", "past the end"});
}

TEST(GgufDamaged, OverlappingTensors) {
  tw::GgufWriter writer;
  writer.add_f32_tensor("first", {16}, std::vector<float>(16, 1.0f));
  writer.add_tensor(tw::TestTensor{"second", {16}, 0, std::vector<uint8_t>(64), uint64_t{32}});
  expect_message(parse_error(writer.build()), {"damaged.gguf", "'first'", "'second'", "overlap", "[0, 64)"});
  // Zero-sized tensors overlap nothing.
  tw::GgufWriter empty;
  empty.add_f32_tensor("data", {4}, {1, 2, 3, 4});
  empty.add_tensor(tw::TestTensor{"nothing", {0}, 0, {}, uint64_t{0}});
  EXPECT_EQ(parse_error(empty.build()), "<no error>");
}

}  // namespace
}  // namespace octet::gguf
