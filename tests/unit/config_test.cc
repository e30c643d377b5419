// dcagent's TOML configuration: what is accepted, and that every rejection names
// the file, the line and the key so an operator can fix it.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/result.h"
#include "daemon/config/config.h"

namespace {

using namespace dc;

::testing::AssertionResult Has(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" lacks \"" << part << "\"";
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dc-config-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    char real[PATH_MAX];
    ASSERT_NE(realpath(dir_.c_str(), real), nullptr);
    real_dir_ = real;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static Result<Config> Parse(const std::string& text) { return parse_config(text, "test.toml"); }

  // Error text of a config that must be rejected.
  static std::string Reject(const std::string& text) {
    auto r = Parse(text);
    if (r.ok()) {
      ADD_FAILURE() << "accepted:\n" << text;
      return "";
    }
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
    return r.error().message;
  }

  std::string dir_, real_dir_;
};

TEST_F(ConfigTest, FullValidConfig) {
  ASSERT_EQ(mkdir((dir_ + "/imagenet").c_str(), 0755), 0);
  const std::string text =
      "# dcagent\n"
      "[agent]\n"
      "socket = \"/tmp/dc-test/agent.sock\"\n"
      "socket_mode = \"0600\"\n"
      "socket_group = \"train\"\n"
      "log_level = \"debug\"\n"
      "\n"
      "[cache]\n"
      "memory = \"4GiB\"\n"
      "page_size = \"64KiB\"\n"
      "block_size = \"1MiB\"\n"
      "max_open_files = 1024\n"
      "\n"
      "[origin]\n"
      "io_depth = 128\n"
      "\n"
      "[[dataset]]\n"
      "name = \"imagenet\"\n"
      "path = \"" +
      dir_ +
      "/imagenet/\"\n"
      "\n"
      "[[dataset]]\n"
      "name = \"coco\"\n"
      "path = \"/nonexistent-dc-test/coco/\"\n";
  auto r = Parse(text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Config& c = *r;
  EXPECT_EQ(c.source, "test.toml");
  EXPECT_EQ(c.socket, "/tmp/dc-test/agent.sock");
  EXPECT_EQ(c.socket_mode, 0600u);
  EXPECT_EQ(c.socket_group, "train");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.memory, 4ULL << 30);
  EXPECT_EQ(c.page_size, 64u * 1024);
  EXPECT_EQ(c.block_size, 1024u * 1024);
  EXPECT_EQ(c.max_open_files, 1024u);
  EXPECT_EQ(c.io_depth, 128u);
  ASSERT_EQ(c.datasets.size(), 2u);
  EXPECT_EQ(c.datasets[0].name, "imagenet");
  // Existing roots are canonicalised (the temp dir may sit behind a symlink).
  EXPECT_EQ(c.datasets[0].path, real_dir_ + "/imagenet");
  EXPECT_EQ(c.datasets[1].name, "coco");
  // A root that does not exist yet is kept as written, minus the trailing slash.
  EXPECT_EQ(c.datasets[1].path, "/nonexistent-dc-test/coco");

  const std::string d = describe_config(c);
  EXPECT_TRUE(Has(d, "/tmp/dc-test/agent.sock"));
  EXPECT_TRUE(Has(d, "4.0 GiB"));
  EXPECT_TRUE(Has(d, "imagenet"));
}

TEST_F(ConfigTest, IntegerSizes) {
  auto r = Parse(
      "[cache]\n"
      "memory = 1073741824\n"
      "page_size = 4096\n"
      "block_size = 65536\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->memory, 1ULL << 30);
  EXPECT_EQ(r->page_size, 4096u);
  EXPECT_EQ(r->block_size, 65536u);
}

TEST_F(ConfigTest, UnitSpellings) {
  for (const char* mem : {"\"2G\"", "\"2GiB\"", "\"2gib\"", "\"2048MiB\"", "\"2 GiB\""}) {
    auto r = Parse(std::string("[cache]\nmemory = ") + mem + "\n");
    ASSERT_TRUE(r.ok()) << mem << ": " << r.error().message;
    EXPECT_EQ(r->memory, 2ULL << 30) << mem;
  }
}

TEST_F(ConfigTest, EmptyFileKeepsDefaults) {
  auto r = Parse("");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Config d = default_config();
  EXPECT_EQ(r->socket, d.socket);
  EXPECT_EQ(r->memory, d.memory);
  EXPECT_EQ(r->page_size, d.page_size);
  EXPECT_EQ(r->block_size, d.block_size);
  EXPECT_EQ(r->log_level, "info");
}

TEST_F(ConfigTest, UnknownKeyNamesFileLineAndKey) {
  const std::string msg = Reject(
      "[cache]\n"
      "memory = \"4GiB\"\n"
      "\n"
      "memroy = \"8GiB\"\n");
  EXPECT_TRUE(Has(msg, "test.toml:4:"));
  EXPECT_TRUE(Has(msg, "'cache.memroy'"));
  EXPECT_TRUE(Has(msg, "unknown key"));
}

TEST_F(ConfigTest, UnknownKeysInEverySection) {
  EXPECT_TRUE(Has(Reject("[agent]\nsockt = \"/x\"\n"), "test.toml:2: key 'agent.sockt'"));
  EXPECT_TRUE(Has(Reject("[origin]\niodepth = 4\n"), "test.toml:2: key 'origin.iodepth'"));
  EXPECT_TRUE(Has(Reject("[[dataset]]\nname = \"a\"\npath = \"/a\"\nroot = \"/b\"\n"),
                  "test.toml:4: key 'dataset.root'"));
  EXPECT_TRUE(Has(Reject("[cahce]\nmemory = 1\n"), "key 'cahce'"));
  EXPECT_TRUE(Has(Reject("memory = \"4GiB\"\n"), "test.toml:1: key 'memory'"));
}

TEST_F(ConfigTest, BadSizeUnit) {
  const std::string msg = Reject("[cache]\nmemory = \"4XB\"\n");
  EXPECT_TRUE(Has(msg, "test.toml:2:"));
  EXPECT_TRUE(Has(msg, "'cache.memory'"));
  EXPECT_TRUE(Has(msg, "unknown unit"));
  EXPECT_TRUE(Has(Reject("[cache]\nmemory = \"GiB\"\n"), "'cache.memory'"));
  EXPECT_TRUE(Has(Reject("[cache]\nmemory = -1\n"), "must not be negative"));
  EXPECT_TRUE(Has(Reject("[cache]\nmemory = 1.5\n"), "'cache.memory'"));
}

TEST_F(ConfigTest, PageSizeMustBeAPowerOfTwo) {
  const std::string msg = Reject("[cache]\n\npage_size = \"48KiB\"\n");
  EXPECT_TRUE(Has(msg, "test.toml:3:"));
  EXPECT_TRUE(Has(msg, "'cache.page_size'"));
  EXPECT_TRUE(Has(Reject("[cache]\npage_size = 2048\n"), "'cache.page_size'"));
  EXPECT_TRUE(Has(Reject("[cache]\npage_size = \"32MiB\"\n"), "'cache.page_size'"));
  EXPECT_TRUE(Has(Reject("[cache]\nblock_size = \"1000KiB\"\n"), "'cache.block_size'"));
}

TEST_F(ConfigTest, BlockSmallerThanPage) {
  const std::string msg = Reject("[cache]\npage_size = \"64KiB\"\nblock_size = \"32KiB\"\n");
  EXPECT_TRUE(Has(msg, "test.toml"));
  EXPECT_TRUE(Has(msg, "'cache.block_size'"));
  EXPECT_TRUE(Has(Reject("[cache]\npage_size = \"4KiB\"\nblock_size = \"1MiB\"\n"),
                  "at most 64 pages per block"));
}

TEST_F(ConfigTest, MemoryBounds) {
  EXPECT_TRUE(Has(Reject("[cache]\nmemory = \"8MiB\"\n"), "at least 16 blocks"));
  EXPECT_TRUE(Has(Reject("[cache]\nmemory = \"2TiB\"\n"), "at most 1TiB"));
}

TEST_F(ConfigTest, DuplicateDatasetNames) {
  const std::string msg = Reject(
      "[[dataset]]\n"
      "name = \"imagenet\"\n"
      "path = \"/data/a\"\n"
      "[[dataset]]\n"
      "name = \"imagenet\"\n"
      "path = \"/data/b\"\n");
  EXPECT_TRUE(Has(msg, "test.toml:5:"));
  EXPECT_TRUE(Has(msg, "'dataset.name'"));
  EXPECT_TRUE(Has(msg, "duplicate dataset name 'imagenet'"));
}

TEST_F(ConfigTest, DatasetPathMustBeAbsolute) {
  const std::string msg = Reject("[[dataset]]\nname = \"a\"\npath = \"data/a\"\n");
  EXPECT_TRUE(Has(msg, "test.toml:3:"));
  EXPECT_TRUE(Has(msg, "'dataset.path'"));
  EXPECT_TRUE(Has(msg, "absolute"));
  EXPECT_TRUE(Has(Reject("[[dataset]]\nname = \"a\"\npath = \"\"\n"), "'dataset.path'"));
  EXPECT_TRUE(Has(Reject("[[dataset]]\nname = \"a\"\npath = \"/\"\n"), "root directory"));
  EXPECT_TRUE(Has(Reject("[[dataset]]\nname = \"a\"\npath = \"//\"\n"), "root directory"));
}

TEST_F(ConfigTest, DatasetFieldsAreChecked) {
  EXPECT_TRUE(Has(Reject("[[dataset]]\npath = \"/a\"\n"), "'dataset.name': missing"));
  EXPECT_TRUE(Has(Reject("[[dataset]]\nname = \"a\"\n"), "'dataset.path': missing"));
  EXPECT_TRUE(Has(Reject("[[dataset]]\nname = \"a/b\"\npath = \"/a\"\n"), "'dataset.name'"));
  EXPECT_TRUE(Has(Reject("[[dataset]]\nname = \"\"\npath = \"/a\"\n"), "'dataset.name'"));
  EXPECT_TRUE(Has(Reject("[dataset]\nname = \"a\"\n"), "[[dataset]]"));
  std::string many;
  for (int i = 0; i < 65; ++i)
    many += "[[dataset]]\nname = \"d" + std::to_string(i) + "\"\npath = \"/d/" + std::to_string(i) +
            "\"\n";
  EXPECT_TRUE(Has(Reject(many), "at most 64 datasets"));
}

TEST_F(ConfigTest, AgentValuesAreChecked) {
  EXPECT_TRUE(Has(Reject("[agent]\nsocket_mode = \"0999\"\n"), "'agent.socket_mode'"));
  EXPECT_TRUE(Has(Reject("[agent]\nsocket_mode = 660\n"), "'agent.socket_mode'"));
  EXPECT_TRUE(Has(Reject("[agent]\nlog_level = \"verbose\"\n"), "'agent.log_level'"));
  EXPECT_TRUE(Has(Reject("[agent]\nsocket = \"\"\n"), "'agent.socket'"));
  EXPECT_TRUE(
      Has(Reject("[agent]\nsocket = \"/" + std::string(120, 's') + "\"\n"), "'agent.socket'"));
  EXPECT_TRUE(Has(Reject("agent = 3\n"), "[agent]"));
  EXPECT_TRUE(Has(Reject("[origin]\nio_depth = 0\n"), "'origin.io_depth'"));
  EXPECT_TRUE(Has(Reject("[cache]\nmax_open_files = 1\n"), "'cache.max_open_files'"));
}

TEST_F(ConfigTest, ConnectionsPerPeer) {
  const std::string cluster =
      "[cluster]\nnode_id = \"a\"\nlisten = \"10.0.0.1:7070\"\nsecret_file = \"/k\"\n";
  auto d = Parse(cluster);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->cluster.max_connections_per_peer, 4u);
  EXPECT_EQ(d->cluster.connection_idle_ms, 10000u);
  auto r = Parse(cluster + "max_connections_per_peer = 1\nconnection_idle = \"300ms\"\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->cluster.max_connections_per_peer, 1u);
  EXPECT_EQ(r->cluster.connection_idle_ms, 300u);
  for (const char* bad : {"0", "65", "\"4\"", "2.5"}) {
    const std::string msg = Reject(cluster + "max_connections_per_peer = " + bad + "\n");
    EXPECT_TRUE(Has(msg, "test.toml:5:")) << msg;
    EXPECT_TRUE(Has(msg, "'cluster.max_connections_per_peer': expected a number from 1 to 64")) << msg;
  }
  EXPECT_TRUE(Has(Reject(cluster + "connection_idle = \"10\"\n"), "'cluster.connection_idle'"));
  EXPECT_TRUE(Has(Reject(cluster + "connection_idle = \"5ms\"\n"), "'cluster.connection_idle'"));
  EXPECT_TRUE(Has(Reject(cluster + "connection_idle = 10\n"), "'cluster.connection_idle'"));
}

TEST_F(ConfigTest, SyntaxErrorNamesTheLine) {
  const std::string msg = Reject(
      "[cache]\n"
      "page_size = \"64KiB\"\n"
      "memory = \n");
  EXPECT_TRUE(Has(msg, "test.toml:3:"));
  EXPECT_TRUE(Has(Reject("[cache\nmemory = 1\n"), "test.toml:1:"));
}

TEST_F(ConfigTest, DefaultConfig) {
  const Config c = default_config();
  EXPECT_LE(c.memory, 1ULL << 30);
  EXPECT_GE(c.memory, 64ULL << 20);
  EXPECT_EQ(c.socket, "/run/dc/agent.sock");
  EXPECT_EQ(c.page_size, 64u * 1024);
  EXPECT_EQ(c.block_size, 1024u * 1024);
  ASSERT_EQ(c.datasets.size(), 1u);
  EXPECT_EQ(c.datasets[0].name, "datasets");
}

TEST_F(ConfigTest, LoadFromFile) {
  const std::string path = dir_ + "/dcagent.toml";
  {
    std::ofstream out(path);
    out << "[cache]\nmemory = \"512MiB\"\n\nbogus = 1\n";
  }
  auto r = load_config_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Has(r.error().message, path + ":4: key 'cache.bogus'"));

  {
    std::ofstream out(path);
    out << "[cache]\nmemory = \"512MiB\"\n";
  }
  auto ok = load_config_file(path);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->memory, 512ULL << 20);
  EXPECT_EQ(ok->source, path);

  auto missing = load_config_file(dir_ + "/absent.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
}

}  // namespace

namespace {

const char* kClusterHead =
    "[cluster]\n"
    "node_id = \"a\"\n"
    "listen = \"127.0.0.1:7070\"\n"
    "secret_file = \"/k\"\n";

TEST_F(ConfigTest, ClusterSendPath) {
  for (const char* mode : {"copy", "zerocopy", "sendfile"}) {
    auto r = Parse(std::string(kClusterHead) + "send = \"" + mode + "\"\n");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->cluster.send, mode);
  }
  auto d = Parse(kClusterHead);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_FALSE(d->cluster.send.empty());
  const std::string msg = Reject(std::string(kClusterHead) + "\nsend = \"splice\"\n");
  EXPECT_TRUE(Has(msg, "test.toml:6:"));
  EXPECT_TRUE(Has(msg, "'cluster.send'"));
  EXPECT_TRUE(Has(msg, "\"zerocopy\""));
  EXPECT_TRUE(Has(Reject(std::string(kClusterHead) + "send = 1\n"), "'cluster.send'"));
}

// Peer frames are authenticated unless a node opts out explicitly.
TEST_F(ConfigTest, ClusterIntegrity) {
  for (const char* mode : {"mac", "encrypt", "crc"}) {
    auto r = Parse(std::string(kClusterHead) + "integrity = \"" + mode + "\"\n");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->cluster.integrity, mode);
  }
  auto d = Parse(kClusterHead);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->cluster.integrity, "mac");
  const std::string msg = Reject(std::string(kClusterHead) + "integrity = \"none\"\n");
  EXPECT_TRUE(Has(msg, "'cluster.integrity'"));
  EXPECT_TRUE(Has(msg, "\"crc\""));
  EXPECT_TRUE(Has(Reject(std::string(kClusterHead) + "integrity = true\n"), "'cluster.integrity'"));
}

}  // namespace

// [cluster] etcd TLS and auth keys: files are checked at load (exist, readable,
// the password file mode 0600), pairs go together, TLS needs an https endpoint,
// and every error names file, line and key.
namespace {

TEST_F(ConfigTest, EtcdTlsAndAuthKeys) {
  const std::string ca = dir_ + "/ca.pem", pw = dir_ + "/pw", open_pw = dir_ + "/pw-open";
  std::ofstream(ca) << "-----BEGIN CERTIFICATE-----\n";
  std::ofstream(pw) << "secret\n";
  std::ofstream(open_pw) << "secret\n";
  ASSERT_EQ(chmod(pw.c_str(), 0600), 0);
  ASSERT_EQ(chmod(open_pw.c_str(), 0644), 0);
  const std::string head = std::string(kClusterHead) + "membership = \"etcd\"\n";
  const std::string https = head + "etcd = [\"https://10.0.0.9:2379\", \"10.0.0.8:2379\"]\n";
  auto r = Parse(https + "etcd_ca = \"" + ca + "\"\netcd_cert = \"" + ca + "\"\netcd_key = \"" +
                 ca + "\"\netcd_user = \"dc\"\netcd_password_file = \"" + pw + "\"\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->cluster.etcd[0], "https://10.0.0.9:2379");
  EXPECT_EQ(r->cluster.etcd_ca, ca);
  EXPECT_EQ(r->cluster.etcd_user, "dc");
  EXPECT_EQ(r->cluster.etcd_password_file, pw);
  EXPECT_TRUE(Parse(head + "etcd = [\"http://10.0.0.9:2379\"]\n").ok());

  for (const char* bad : {"ftp://h:1", "https://h", "https://h:1/x", "h:1/x", "http://"})
    EXPECT_TRUE(Has(Reject(head + "etcd = [\"" + bad + "\"]\n"), "'cluster.etcd'")) << bad;
  std::string msg = Reject(https + "\netcd_ca = \"" + dir_ + "/missing.pem\"\n");
  EXPECT_TRUE(Has(msg, "test.toml:8: key 'cluster.etcd_ca'")) << msg;
  EXPECT_TRUE(Has(msg, "No such file")) << msg;
  EXPECT_TRUE(Has(Reject(https + "etcd_ca = \"ca.pem\"\n"), "absolute path"));
  EXPECT_TRUE(Has(Reject(https + "etcd_cert = \"" + ca + "\"\n"), "go together"));
  EXPECT_TRUE(Has(Reject(https + "etcd_user = \"dc\"\n"), "'cluster.etcd_user'"));
  msg = Reject(https + "etcd_user = \"dc\"\netcd_password_file = \"" + open_pw + "\"\n");
  EXPECT_TRUE(Has(msg, "'cluster.etcd_password_file'")) << msg;
  EXPECT_TRUE(Has(msg, "chmod 600")) << msg;
  msg = Reject(head + "etcd = [\"10.0.0.9:2379\"]\netcd_ca = \"" + ca + "\"\n");
  EXPECT_TRUE(Has(msg, "no etcd endpoint is https://")) << msg;
  EXPECT_TRUE(Has(Reject(https + "etcd_user = \"\"\n"), "must not be empty"));
}

}  // namespace
