// The roots file (<socket>.roots) is read by shims of any release: it must be
// exactly the dataset part of a hello reply, the socket's mode, replaced atomically.
#include "daemon/control/roots_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "dc/control.h"

namespace {

using namespace dc;

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/roots_file_test.XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

TEST(RootsFile, IsTheDatasetPartOfAHelloReply) {
  const std::vector<DatasetConfig> ds = {{"imagenet", "/mnt/lustre/imagenet"}, {"c4", "/data/c4"}};
  const std::vector<uint8_t> b = encode_dataset_roots(ds);
  ctl::HelloReply h{};
  ASSERT_GE(b.size(), sizeof h);
  memcpy(&h, b.data(), sizeof h);
  EXPECT_EQ(h.h.magic, ctl::kMagic);
  EXPECT_EQ(h.h.op, static_cast<uint16_t>(ctl::Op::kHelloReply));
  EXPECT_EQ(h.h.length, b.size());
  EXPECT_EQ(h.status, 0);
  EXPECT_EQ(h.dataset_count, 2u);
  EXPECT_EQ(h.fd_count, 0u);
  // Records follow, each 8-aligned: (name_len, root_len), name, root.
  size_t at = sizeof h;
  for (const auto& d : ds) {
    ctl::DatasetRecord r{};
    ASSERT_LE(at + sizeof r, b.size());
    memcpy(&r, b.data() + at, sizeof r);
    at += sizeof r;
    ASSERT_EQ(r.name_len, d.name.size());
    ASSERT_EQ(r.root_len, d.path.size());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + at), r.name_len), d.name);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + at + r.name_len), r.root_len),
              d.path);
    at = (at + r.name_len + r.root_len + 7) & ~size_t{7};
  }
  EXPECT_EQ(at, b.size());
}

TEST(RootsFile, WrittenBesideTheSocketWithItsModeAndReplaced) {
  TempDir dir;
  const std::string sock = dir.path + "/agent.sock";
  ASSERT_TRUE(write_roots_file(sock, {{"a", "/x"}}, 0640, getegid()).ok());
  ASSERT_TRUE(write_roots_file(sock, {{"b", "/y"}, {"c", "/z"}}, 0640, getegid()).ok());
  const std::string path = roots_file_path(sock);
  EXPECT_EQ(path, sock + ".roots");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ(slurp(path), encode_dataset_roots({{"b", "/y"}, {"c", "/z"}}));
  EXPECT_NE(access((path + ".tmp").c_str(), F_OK), 0);  // no temporary left behind
  remove_roots_file(sock);
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

}  // namespace
