// GGUF reader on well-formed files built by the test writer: every metadata type, nested arrays,
// several tensors, custom alignment, v2 and v3, parse() and open() (mmap).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>

#include "common/error.h"
#include "formats/gguf.h"
#include "gguf_test_writer.h"

namespace octet::gguf {
namespace {

namespace tw = testing;

bool same_value(const Value& a, const Value& b) {
  if (a.type != b.type || a.data.index() != b.data.index()) return false;
  if (const auto* u = std::get_if<uint64_t>(&a.data)) return *u == std::get<uint64_t>(b.data);
  if (const auto* i = std::get_if<int64_t>(&a.data)) return *i == std::get<int64_t>(b.data);
  if (const auto* d = std::get_if<double>(&a.data)) return *d == std::get<double>(b.data);
  if (const auto* flag = std::get_if<bool>(&a.data)) return *flag == std::get<bool>(b.data);
  if (const auto* text = std::get_if<std::string>(&a.data)) return *text == std::get<std::string>(b.data);
  if (a.element_type != b.element_type) return false;
  const auto& x = std::get<Array>(a.data);
  const auto& y = std::get<Array>(b.data);
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i)
    if (!same_value(x[i], y[i])) return false;
  return true;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "<no error>";
}

std::vector<std::pair<std::string, Value>> every_metadata_type() {
  return {
      {"t.u8", tw::u8(255)},
      {"t.i8", tw::i8(-128)},
      {"t.u16", tw::u16(65535)},
      {"t.i16", tw::i16(-32768)},
      {"t.u32", tw::u32(std::numeric_limits<uint32_t>::max())},
      {"t.i32", tw::i32(std::numeric_limits<int32_t>::min())},
      {"t.u64", tw::u64(std::numeric_limits<uint64_t>::max())},
      {"t.i64", tw::i64(std::numeric_limits<int64_t>::min())},
      {"t.f32", tw::f32(1.5e-5f)},
      {"t.f64", tw::f64(std::numbers::pi)},
      {"t.true", tw::boolean(true)},
      {"t.false", tw::boolean(false)},
      {"t.string", tw::str("h\xc3\xa9llo \xe2\x96\x81world")},
      {"t.empty_string", tw::str("")},
      {"t.u8_array", tw::array(ValueType::UINT8, {tw::u8(1), tw::u8(2), tw::u8(250)})},
      {"t.i32_array", tw::array(ValueType::INT32, {tw::i32(-1), tw::i32(7)})},
      {"t.f32_array", tw::array(ValueType::FLOAT32, {tw::f32(0.25f), tw::f32(-3.0f)})},
      {"t.bool_array", tw::array(ValueType::BOOL, {tw::boolean(true), tw::boolean(false)})},
      {"t.string_array", tw::array(ValueType::STRING, {tw::str("a"), tw::str(""), tw::str("<|eot_id|>")})},
      {"t.empty_array", tw::array(ValueType::UINT64, {})},
      {"t.nested",
       tw::array(ValueType::ARRAY, {tw::array(ValueType::INT16, {tw::i16(1), tw::i16(-2)}),
                                    tw::array(ValueType::STRING, {tw::str("x")}), tw::array(ValueType::UINT8, {})})},
  };
}

TEST(Gguf, EveryMetadataTypeRoundTrips) {
  for (uint32_t version : {2u, 3u}) {
    tw::GgufWriter writer;
    writer.version = version;
    const auto entries = every_metadata_type();
    for (const auto& [key, value] : entries) writer.add(key, value);
    const auto bytes = writer.build();
    const File file = File::parse(bytes, "types.gguf");
    EXPECT_EQ(file.version(), version);
    EXPECT_EQ(file.alignment(), 32u);
    EXPECT_TRUE(file.tensors().empty());
    ASSERT_EQ(file.metadata().size(), entries.size());
    for (const auto& [key, value] : entries) {
      ASSERT_TRUE(file.has(key)) << key;
      EXPECT_TRUE(same_value(file.metadata().at(key), value)) << key;
    }
  }
}

TEST(Gguf, TypedGetters) {
  tw::GgufWriter writer;
  for (const auto& [key, value] : every_metadata_type()) writer.add(key, value);
  const auto bytes = writer.build();
  const File file = File::parse(bytes, "types.gguf");

  EXPECT_EQ(file.get_uint("t.u8"), 255u);
  EXPECT_EQ(file.get_uint("t.u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(file.get_int("t.i32"), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(file.get_int("t.u32"), int64_t{std::numeric_limits<uint32_t>::max()});
  EXPECT_EQ(file.get_float("t.f32"), double{1.5e-5f});
  EXPECT_EQ(file.get_float("t.f64"), std::numbers::pi);
  EXPECT_EQ(file.get_float("t.u16"), 65535.0);  // integers are numbers too
  EXPECT_EQ(file.get_bool("t.true"), true);
  EXPECT_EQ(file.get_bool("t.false"), false);
  EXPECT_EQ(file.get_string("t.string"), "h\xc3\xa9llo \xe2\x96\x81world");
  EXPECT_EQ(file.get_string_array("t.string_array"), (std::vector<std::string>{"a", "", "<|eot_id|>"}));
  EXPECT_EQ(file.get_int_array("t.i32_array"), (std::vector<int64_t>{-1, 7}));
  EXPECT_EQ(file.get_int_array("t.u8_array"), (std::vector<int64_t>{1, 2, 250}));
  EXPECT_EQ(file.get_float_array("t.f32_array"), (std::vector<double>{0.25, -3.0}));
  EXPECT_EQ(file.get_int_array("t.empty_array"), std::vector<int64_t>{});

  EXPECT_FALSE(file.get_string("absent").has_value());
  EXPECT_FALSE(file.get_uint("absent").has_value());
  EXPECT_FALSE(file.get_string_array("absent").has_value());

  // Wrong types and out-of-range values name the file and the key.
  auto expect_error = [&](const std::function<void()>& action, const std::string& key, const std::string& detail) {
    const std::string message = error_of(action);
    EXPECT_NE(message.find("types.gguf"), std::string::npos) << message;
    EXPECT_NE(message.find("'" + key + "'"), std::string::npos) << message;
    EXPECT_NE(message.find(detail), std::string::npos) << message;
  };
  expect_error([&] { file.get_string("t.u32"); }, "t.u32", "expected STRING, found UINT32");
  expect_error([&] { file.get_uint("t.i8"); }, "t.i8", "non-negative");
  expect_error([&] { file.get_int("t.u64"); }, "t.u64", "does not fit");
  expect_error([&] { file.get_uint("t.string"); }, "t.string", "found STRING");
  expect_error([&] { file.get_float("t.true"); }, "t.true", "found BOOL");
  expect_error([&] { file.get_bool("t.u8"); }, "t.u8", "expected BOOL");
  expect_error([&] { file.get_string_array("t.i32_array"); }, "t.i32_array", "found ARRAY of INT32");
  expect_error([&] { file.get_int_array("t.f32_array"); }, "t.f32_array", "ARRAY of integers");
  expect_error([&] { file.get_float("t.f32_array"); }, "t.f32_array", "a number");
}

TEST(Gguf, TensorsWithCustomAlignment) {
  for (uint32_t alignment : {1u, 8u, 64u, 4096u}) {
    tw::GgufWriter writer;
    writer.set_alignment(alignment);
    writer.add("general.architecture", tw::str("llama"));
    const std::vector<float> norm = {1.0f, -2.5f, 3.25f};
    writer.add_f32_tensor("norm", {3}, norm);
    std::vector<uint8_t> q8(34 * 4);
    for (size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<uint8_t>(i * 7);
    for (int block = 0; block < 4; ++block) q8[34 * block] = 0x00, q8[34 * block + 1] = 0x3c;  // d = 1.0
    writer.add_tensor("matrix", {64, 2}, TensorType::Q8_0, q8);
    writer.add_tensor("half", {2, 1, 1, 1}, TensorType::F16, {0x00, 0x3c, 0x00, 0xc0});  // 1, -2
    writer.add_tensor("empty", {0, 5}, TensorType::F32, {});
    const auto bytes = writer.build();
    const File file = File::parse(bytes, "tensors.gguf");

    EXPECT_EQ(file.alignment(), alignment);
    ASSERT_EQ(file.tensors().size(), 4u);
    EXPECT_EQ(file.tensors()[0].name, "norm");  // file order kept
    EXPECT_EQ(file.tensors()[3].name, "empty");
    for (const TensorInfo& tensor : file.tensors()) EXPECT_EQ(tensor.offset % alignment, 0u) << tensor.name;

    const TensorInfo& matrix = file.tensor("matrix");
    EXPECT_EQ(matrix.type, TensorType::Q8_0);
    EXPECT_EQ(matrix.dims, (std::vector<uint64_t>{64, 2}));
    EXPECT_EQ(matrix.element_count, 128u);
    EXPECT_EQ(matrix.byte_size, 136u);
    const auto matrix_bytes = file.tensor_bytes(matrix);
    EXPECT_EQ(std::vector<uint8_t>(matrix_bytes.begin(), matrix_bytes.end()), q8);
    const auto values = file.dequantize(matrix);
    for (int block = 0; block < 4; ++block)
      for (int j = 0; j < 32; ++j)
        EXPECT_EQ(values[32 * block + j], static_cast<float>(static_cast<int8_t>(q8[34 * block + 2 + j])));

    EXPECT_EQ(file.dequantize(file.tensor("norm")), norm);
    EXPECT_EQ(file.dequantize(file.tensor("half")), (std::vector<float>{1.0f, -2.0f}));
    EXPECT_EQ(file.tensor("empty").element_count, 0u);
    EXPECT_TRUE(file.dequantize(file.tensor("empty")).empty());
    EXPECT_EQ(file.find_tensor("absent"), nullptr);
    const std::string message = error_of([&] { file.tensor("absent"); });
    EXPECT_NE(message.find("tensors.gguf"), std::string::npos);
    EXPECT_NE(message.find("'absent'"), std::string::npos);
  }
}

TEST(Gguf, OpenMapsTheFile) {
  const std::string path = ::testing::TempDir() + "/octet_gguf_open_test.gguf";
  tw::GgufWriter writer;
  writer.add("general.name", tw::str("mapped"));
  writer.add_f32_tensor("weights", {2, 2}, {1, 2, 3, 4});
  writer.save(path);
  {
    const File file = File::open(path);
    EXPECT_EQ(file.path(), path);
    EXPECT_EQ(file.get_string("general.name"), "mapped");
    const File copy = file;  // the mapping is shared and outlives the original
    EXPECT_EQ(copy.dequantize(copy.tensor("weights")), (std::vector<float>{1, 2, 3, 4}));
  }
  std::filesystem::remove(path);

  const std::string missing = error_of([&] { File::open(path); });
  EXPECT_NE(missing.find(path), std::string::npos) << missing;
  EXPECT_NE(missing.find("cannot open"), std::string::npos) << missing;

  std::ofstream(path, std::ios::trunc).close();
  const std::string empty = error_of([&] { File::open(path); });
  EXPECT_NE(empty.find("empty file"), std::string::npos) << empty;
  std::filesystem::remove(path);

  const std::string directory = error_of([&] { File::open(::testing::TempDir()); });
  EXPECT_NE(directory.find("not a regular file"), std::string::npos) << directory;
}

TEST(Gguf, FileWithoutTensorsMayEndBeforeTheDataSection) {
  tw::GgufWriter writer;
  writer.add("general.name", tw::str("abc"));  // header ends off any 32-byte boundary
  const auto bytes = writer.build();
  ASSERT_NE(bytes.size() % 32, 0u);
  const File file = File::parse(bytes, "no_tensors.gguf");
  EXPECT_TRUE(file.tensors().empty());
}

}  // namespace
}  // namespace octet::gguf
