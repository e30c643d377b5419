// A small JSON reader for what etcd's v3 gateway sends: a full parse into a tree
// (so a missing or mistyped field is seen, not skipped over by a substring
// search), with limits on depth and size because the bytes come off the network.
// Also a splitter that cuts a byte stream into top-level JSON objects, since the
// watch stream's chunk boundaries are not promised to match its messages.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dc {

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  std::string text;              // a string's contents (unescaped), or a number's literal
  std::vector<JsonValue> items;  // kArray
  std::vector<std::pair<std::string, JsonValue>> members;  // kObject, in order

  // Declared here, defaulted below where JsonValue is complete: std::pair of an
  // incomplete type is not allowed, and clang with libstdc++ rejects the
  // implicit members (the fuzz build, tests/fuzz, uses clang).
  JsonValue();
  JsonValue(const JsonValue&);
  JsonValue(JsonValue&&) noexcept;
  JsonValue& operator=(const JsonValue&);
  JsonValue& operator=(JsonValue&&) noexcept;
  ~JsonValue();

  // The member `key` of an object; nullptr if absent or this is no object.
  const JsonValue* get(std::string_view key) const;
  bool is_object() const { return kind == Kind::kObject; }
};
inline JsonValue::JsonValue() = default;
inline JsonValue::JsonValue(const JsonValue&) = default;
inline JsonValue::JsonValue(JsonValue&&) noexcept = default;
inline JsonValue& JsonValue::operator=(const JsonValue&) = default;
inline JsonValue& JsonValue::operator=(JsonValue&&) noexcept = default;
inline JsonValue::~JsonValue() = default;

// One JSON text (surrounding whitespace allowed). nullopt, with a reason in
// *error, on anything malformed, nested deeper than 32 or larger than 4 MiB.
std::optional<JsonValue> parse_json(std::string_view in, std::string* error);

// A 64-bit unsigned integer from a number or a string of digits (etcd's gateway
// quotes int64 fields). An absent value (nullptr) is protobuf's default, 0.
// False if present but not such an integer.
bool json_u64(const JsonValue* v, uint64_t* out);
// A boolean; absent is false. False if present but not a boolean.
bool json_bool(const JsonValue* v, bool* out);

// Cuts a stream of concatenated JSON objects (whitespace between them allowed)
// into one string per object, however the bytes arrive. Only the framing is
// checked here (braces outside strings); each piece still goes to parse_json.
class JsonObjectSplitter {
 public:
  explicit JsonObjectSplitter(size_t max_object = 1 << 20) : max_object_(max_object) {}
  // Appends every object completed by `in` to *out. False once the stream is
  // broken (a byte outside an object that is not whitespace, an object too big);
  // it stays broken.
  bool feed(std::string_view in, std::vector<std::string>* out);
  // Bytes of an object begun but not finished.
  size_t pending() const { return partial_.size(); }

 private:
  size_t max_object_;
  std::string partial_;
  int depth_ = 0;
  bool in_string_ = false;
  bool escaped_ = false;
  bool broken_ = false;
};

}  // namespace dc
