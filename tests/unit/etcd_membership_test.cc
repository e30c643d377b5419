// The base64 the etcd gateway speaks: RFC 4648 vectors, round trips, and
// rejection of what is not canonical base64 (it comes off the network).
#include "daemon/cluster/etcd_wire.h"

#include <gtest/gtest.h>

#include <random>

namespace dc {
namespace {

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> v[] = {{"", ""},
                                                   {"f", "Zg=="},
                                                   {"fo", "Zm8="},
                                                   {"foo", "Zm9v"},
                                                   {"foob", "Zm9vYg=="},
                                                   {"fooba", "Zm9vYmE="},
                                                   {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, coded] : v) {
    EXPECT_EQ(base64_encode(plain), coded);
    EXPECT_EQ(base64_decode(coded), std::optional<std::string>(plain));
  }
  EXPECT_EQ(base64_encode("/dc/members/"), "L2RjL21lbWJlcnMv");
}

TEST(Base64, RoundTripsBinary) {
  std::mt19937 rng(3);
  for (int len = 0; len < 200; ++len) {
    std::string s(static_cast<size_t>(len), '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    EXPECT_EQ(base64_decode(base64_encode(s)), std::optional<std::string>(s)) << len;
  }
}

TEST(Base64, RejectsNonCanonical) {
  for (const char* bad :
       {"Zg=", "Zg", "Z===", "Zh==", "Zm9=", "Zm 9v", "Zm9v!A==", "=Zm9", "Zg==Zg==", "===="})
    EXPECT_FALSE(base64_decode(bad)) << bad;
}

}  // namespace
}  // namespace dc
