#include "daemon/cluster/etcd_json.h"

#include <cstring>

namespace dc {
namespace {

constexpr int kMaxDepth = 32;
constexpr size_t kMaxText = 4u << 20;

class Parser {
 public:
  explicit Parser(std::string_view in) : in_(in) {}

  bool document(JsonValue* out) {
    skip_space();
    if (!value(out, 0)) return false;
    skip_space();
    if (pos_ != in_.size()) return fail("trailing bytes after the value");
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  bool fail(const char* why) {
    if (error_.empty()) error_ = std::string(why) + " at byte " + std::to_string(pos_);
    return false;
  }
  void skip_space() {
    while (pos_ < in_.size() &&
           (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r'))
      ++pos_;
  }
  bool literal(const char* word) {
    const size_t n = strlen(word);
    if (in_.substr(pos_, n) != word) return fail("unknown literal");
    pos_ += n;
    return true;
  }

  bool value(JsonValue* out, int depth) {
    if (depth > kMaxDepth) return fail("nested too deep");
    if (pos_ >= in_.size()) return fail("unexpected end");
    switch (in_[pos_]) {
      case '{':
        return object(out, depth);
      case '[':
        return array(out, depth);
      case '"':
        out->kind = JsonValue::Kind::kString;
        return string(&out->text);
      case 't':
        out->kind = JsonValue::Kind::kBool;
        out->boolean = true;
        return literal("true");
      case 'f':
        out->kind = JsonValue::Kind::kBool;
        out->boolean = false;
        return literal("false");
      case 'n':
        out->kind = JsonValue::Kind::kNull;
        return literal("null");
      default:
        return number(out);
    }
  }

  bool object(JsonValue* out, int depth) {
    out->kind = JsonValue::Kind::kObject;
    ++pos_;  // '{'
    skip_space();
    if (pos_ < in_.size() && in_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_space();
      if (pos_ >= in_.size() || in_[pos_] != '"') return fail("expected a member name");
      std::string key;
      if (!string(&key)) return false;
      skip_space();
      if (pos_ >= in_.size() || in_[pos_] != ':') return fail("expected ':'");
      ++pos_;
      skip_space();
      JsonValue v;
      if (!value(&v, depth + 1)) return false;
      out->members.emplace_back(std::move(key), std::move(v));
      skip_space();
      if (pos_ >= in_.size()) return fail("unexpected end in an object");
      if (in_[pos_] == '}') {
        ++pos_;
        return true;
      }
      if (in_[pos_] != ',') return fail("expected ',' or '}'");
      ++pos_;
    }
  }

  bool array(JsonValue* out, int depth) {
    out->kind = JsonValue::Kind::kArray;
    ++pos_;  // '['
    skip_space();
    if (pos_ < in_.size() && in_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_space();
      JsonValue v;
      if (!value(&v, depth + 1)) return false;
      out->items.push_back(std::move(v));
      skip_space();
      if (pos_ >= in_.size()) return fail("unexpected end in an array");
      if (in_[pos_] == ']') {
        ++pos_;
        return true;
      }
      if (in_[pos_] != ',') return fail("expected ',' or ']'");
      ++pos_;
    }
  }

  static void put_utf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xc0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xe0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      *out += static_cast<char>(0xf0 | (cp >> 18));
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  bool hex4(uint32_t* out) {
    if (pos_ + 4 > in_.size()) return fail("short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = in_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<uint32_t>(c - 'A' + 10);
      else
        return fail("bad \\u escape");
    }
    *out = v;
    return true;
  }

  bool string(std::string* out) {
    ++pos_;  // '"'
    for (;;) {
      if (pos_ >= in_.size()) return fail("unterminated string");
      const char c = in_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return fail("control byte in a string");
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (pos_ >= in_.size()) return fail("unterminated escape");
      const char e = in_[pos_++];
      switch (e) {
        case '"':
          *out += '"';
          break;
        case '\\':
          *out += '\\';
          break;
        case '/':
          *out += '/';
          break;
        case 'b':
          *out += '\b';
          break;
        case 'f':
          *out += '\f';
          break;
        case 'n':
          *out += '\n';
          break;
        case 'r':
          *out += '\r';
          break;
        case 't':
          *out += '\t';
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(&cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00) {  // a surrogate pair spells one code point
            uint32_t lo = 0;
            if (in_.substr(pos_, 2) != "\\u") return fail("lone surrogate");
            pos_ += 2;
            if (!hex4(&lo) || lo < 0xdc00 || lo >= 0xe000) return fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            return fail("lone surrogate");
          }
          put_utf8(cp, out);
          break;
        }
        default:
          return fail("unknown escape");
      }
    }
  }

  bool number(JsonValue* out) {
    // RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') ++pos_;
      return pos_ > from;
    };
    if (pos_ < in_.size() && in_[pos_] == '-') ++pos_;
    if (pos_ < in_.size() && in_[pos_] == '0')
      ++pos_;
    else if (!digits())
      return fail("unexpected byte");
    if (pos_ < in_.size() && in_[pos_] == '.') {
      ++pos_;
      if (!digits()) return fail("bad number");
    }
    if (pos_ < in_.size() && (in_[pos_] == 'e' || in_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < in_.size() && (in_[pos_] == '+' || in_[pos_] == '-')) ++pos_;
      if (!digits()) return fail("bad number");
    }
    out->kind = JsonValue::Kind::kNumber;
    out->text = std::string(in_.substr(start, pos_ - start));
    return true;
  }

  std::string_view in_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

const JsonValue* JsonValue::get(std::string_view key) const {
  if (kind != Kind::kObject) return nullptr;
  for (const auto& [k, v] : members)
    if (k == key) return &v;
  return nullptr;
}

std::optional<JsonValue> parse_json(std::string_view in, std::string* error) {
  if (in.size() > kMaxText) {
    *error = "JSON text of " + std::to_string(in.size()) + " bytes is too large";
    return std::nullopt;
  }
  Parser p(in);
  JsonValue v;
  if (!p.document(&v)) {
    *error = p.error();
    return std::nullopt;
  }
  return v;
}

bool json_u64(const JsonValue* v, uint64_t* out) {
  *out = 0;
  if (!v) return true;
  if (v->kind != JsonValue::Kind::kString && v->kind != JsonValue::Kind::kNumber) return false;
  const std::string& s = v->text;
  if (s.empty() || s.size() > 20) return false;
  uint64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - d) / 10) return false;
    n = n * 10 + d;
  }
  *out = n;
  return true;
}

bool json_bool(const JsonValue* v, bool* out) {
  *out = false;
  if (!v) return true;
  if (v->kind != JsonValue::Kind::kBool) return false;
  *out = v->boolean;
  return true;
}

bool JsonObjectSplitter::feed(std::string_view in, std::vector<std::string>* out) {
  if (broken_) return false;
  for (char c : in) {
    if (depth_ == 0) {
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
      if (c != '{') {
        broken_ = true;
        return false;
      }
    }
    partial_ += c;
    if (partial_.size() > max_object_) {
      broken_ = true;
      return false;
    }
    if (in_string_) {
      if (escaped_)
        escaped_ = false;
      else if (c == '\\')
        escaped_ = true;
      else if (c == '"')
        in_string_ = false;
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) {
        out->push_back(std::move(partial_));
        partial_.clear();
      }
    }
  }
  return true;
}

}  // namespace dc
