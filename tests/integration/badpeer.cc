// Plays a peer against a real agent's cluster port: every kind of malformed or
// unauthenticated message must get the connection dropped (and counted), the agent
// must stay up, and an authenticated peer must get clean refusals for requests it
// may not make, and verified bytes for one it may. After the handshake it speaks
// sealed frames (the agent's [cluster] integrity, given as INTEGRITY, default mac):
// a frame with a bad tag, a replayed one or an unsealed one gets the connection
// dropped and counted (peer_auth_errors).
//
//   dcbadpeer HOST PORT SECRET_FILE DATASET_NAME DATASET_ROOT GOOD_REL_PATH [INTEGRITY]
//
// A separate mode plays a peer that asks for many blocks and reads none of the
// replies for a while (the owner must not buffer them all), then reads them all
// (they must all arrive, right: the owner resumed once they drained):
//
//   dcbadpeer --no-read HOST PORT SECRET_FILE DATASET_NAME DATASET_ROOT REL_PATH COUNT HOLD_SECONDS
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "daemon/net/auth.h"
#include "daemon/net/crc32c.h"
#include "daemon/net/frame_seal.h"
#include "dc/file_key.h"
#include "dc/peer_wire.h"

using namespace dc;

namespace {

std::string g_host;
int g_port = 0;
std::string g_secret;
int g_failures = 0;
peer::Integrity g_integrity = peer::Integrity::kMac;

// The sealing state of an authenticated connection (by fd); none: unsealed.
struct Session {
  std::unique_ptr<FrameSeal> out, in;
};
std::map<int, Session> g_sessions;

void check(const char* what, bool ok) {
  printf("%-56s %s\n", what, ok ? "ok" : "FAILED");
  if (!ok) ++g_failures;
}

int dial() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(g_port));
  inet_pton(AF_INET, g_host.c_str(), &a.sin_addr);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    perror("connect");
    close(fd);
    return -1;
  }
  return fd;
}

peer::Header header(peer::Op op, uint32_t id, const void* body, uint32_t len,
                    uint32_t extra_len = 0, bool sealed = false) {
  peer::Header h{peer::kMagic,
                 peer::kVersion,
                 static_cast<uint16_t>(op),
                 id,
                 len + extra_len,
                 len && !sealed ? crc32c(body, len) : 0,
                 0};
  h.header_crc = crc32c(&h, sizeof h);
  return h;
}

// The bytes of one message as the agent expects them on `fd`: sealed if the
// connection is (header | body | tag), else header | body.
std::vector<uint8_t> frame(int fd, peer::Op op, uint32_t id, const void* body, uint32_t len) {
  auto it = g_sessions.find(fd);
  const bool sealed = it != g_sessions.end() && it->second.out;
  peer::Header h = header(op, id, body, len, 0, sealed);
  std::vector<uint8_t> b(sizeof h + len + (sealed ? peer::kTagBytes : 0));
  memcpy(b.data(), &h, sizeof h);
  if (len) memcpy(b.data() + sizeof h, body, len);
  if (sealed) {
    FrameSeal& s = *it->second.out;
    uint8_t* p = b.data() + sizeof h;
    s.begin(&h, sizeof h);
    if (len) s.update(p, p, len);
    s.finish_seal(p + len);
  }
  return b;
}

void send_msg(int fd, peer::Op op, uint32_t id, const void* body, uint32_t len) {
  const auto b = frame(fd, op, id, body, len);
  send(fd, b.data(), b.size(), MSG_NOSIGNAL);
}

bool recv_all(int fd, void* buf, size_t n) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    ssize_t r = recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// True if the server closes the connection (rather than answering) within 5 s.
bool dropped(int fd) {
  uint8_t b[256];
  for (;;) {
    ssize_t r = recv(fd, b, sizeof b, 0);
    if (r == 0) return true;
    if (r < 0) return errno == ECONNRESET;
  }
}

void expect_dropped(const char* what, const std::vector<uint8_t>& bytes, bool close_write = false) {
  int fd = dial();
  if (fd < 0) return check(what, false);
  send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  if (close_write) shutdown(fd, SHUT_WR);
  check(what, dropped(fd));
  close(fd);
}

template <typename T>
std::vector<uint8_t> bytes_of(const T& v) {
  std::vector<uint8_t> b(sizeof v);
  memcpy(b.data(), &v, sizeof v);
  return b;
}

std::vector<uint8_t> message(peer::Op op, const void* body, uint32_t len) {
  peer::Header h = header(op, 1, body, len);
  std::vector<uint8_t> b(sizeof h + len);
  memcpy(b.data(), &h, sizeof h);
  if (len) memcpy(b.data() + sizeof h, body, len);
  return b;
}

peer::HelloV2Body hello_body(uint8_t nonce[32], peer::Integrity mode) {
  peer::HelloV2Body h{};
  snprintf(h.node_id, sizeof h.node_id, "tester");
  random_nonce(nonce);
  memcpy(h.nonce, nonce, 32);
  h.integrity = static_cast<uint8_t>(mode);
  return h;
}

// Reads one message's header and control body, opening them if `fd` is sealed.
bool recv_control(int fd, peer::Header* h, void* body, size_t len) {
  if (!recv_all(fd, h, sizeof *h) || (len && !recv_all(fd, body, len))) return false;
  auto it = g_sessions.find(fd);
  if (it == g_sessions.end() || !it->second.in) return true;
  uint8_t tag[peer::kTagBytes];
  if (!recv_all(fd, tag, sizeof tag)) return false;
  FrameSeal& o = *it->second.in;
  auto* p = static_cast<uint8_t*>(body);
  return o.begin(h, sizeof *h) && (len == 0 || o.update(p, p, len)) && o.finish_open(tag);
}

// Full handshake with `secret` asking for `mode`; returns the connected fd (its
// frames sealed from now on) or -1.
int authenticate(const std::string& secret, peer::Integrity mode = g_integrity) {
  int fd = dial();
  if (fd < 0) return -1;
  uint8_t nonce[32];
  peer::HelloV2Body hb = hello_body(nonce, mode);
  send_msg(fd, peer::Op::kHelloV2, 1, &hb, sizeof hb);
  peer::Header h;
  peer::ChallengeV2Body c;
  if (!recv_all(fd, &h, sizeof h) || h.op != static_cast<uint16_t>(peer::Op::kChallengeV2) ||
      !recv_all(fd, &c, sizeof c)) {
    close(fd);
    return -1;
  }
  const std::string server_id(c.node_id, strnlen(c.node_id, sizeof c.node_id));
  peer::AuthBody a;
  const AuthProof p = prove(secret, kAuthRoleClient, nonce, c.nonce, "tester", server_id,
                            static_cast<uint8_t>(mode));
  memcpy(a.proof, p.data(), sizeof a.proof);
  send_msg(fd, peer::Op::kAuth, 2, &a, sizeof a);
  auto keys =
      derive_session_keys(secret, nonce, c.nonce, "tester", server_id, static_cast<uint8_t>(mode));
  if (keys && mode != peer::Integrity::kCrc) {
    const bool enc = mode == peer::Integrity::kEncrypt;
    g_sessions[fd] = Session{std::move(*FrameSeal::create(keys->client_to_server, enc, true)),
                             std::move(*FrameSeal::create(keys->server_to_client, enc, false))};
  }
  if (!recv_control(fd, &h, nullptr, 0) || h.op != static_cast<uint16_t>(peer::Op::kAuthOk)) {
    g_sessions.erase(fd);
    close(fd);
    return -1;
  }
  return fd;
}

void close_session(int fd) {
  g_sessions.erase(fd);
  close(fd);
}

// Sends a fetch of [offset, offset + length) of `block` (length 0: to the block's
// end) and reads the reply; returns its status (or -1) and the data.
// Reads one FetchReply and its data, opening them if `fd` is sealed. *ok: the
// tag (if sealed) and the data CRC both check.
bool recv_fetch_reply(int fd, peer::FetchReplyBody* r, std::vector<uint8_t>* data, bool* ok) {
  peer::Header h;
  if (!recv_control(fd, &h, r, sizeof *r)) return false;
  data->resize(r->length);
  if (r->length && !recv_all(fd, data->data(), r->length)) return false;
  bool tag_ok = true;
  auto it = g_sessions.find(fd);
  if (r->length && it != g_sessions.end() && it->second.in) {
    uint8_t tag[peer::kTagBytes];
    FrameSeal& o = *it->second.in;
    tag_ok = recv_all(fd, tag, sizeof tag) && o.begin(&h, sizeof h) &&
             o.update(data->data(), data->data(), data->size()) && o.finish_open(tag);
  }
  *ok = tag_ok && crc32c(data->data(), data->size()) == r->data_crc;
  return true;
}

int fetch(int fd, uint64_t hi, uint64_t lo, const std::string& ds, const std::string& path,
          std::vector<uint8_t>* data, bool* crc_ok, uint64_t block = 0, uint32_t offset = 0, uint32_t length = 0) {
  std::vector<uint8_t> body(sizeof(peer::FetchBody) + ds.size() + path.size());
  peer::FetchBody f{hi, lo, block, offset, length, static_cast<uint16_t>(ds.size()), static_cast<uint16_t>(path.size()), 0};
  memcpy(body.data(), &f, sizeof f);
  memcpy(body.data() + sizeof f, ds.data(), ds.size());
  memcpy(body.data() + sizeof f + ds.size(), path.data(), path.size());
  send_msg(fd, peer::Op::kFetch, 9, body.data(), static_cast<uint32_t>(body.size()));
  peer::FetchReplyBody r;
  if (!recv_fetch_reply(fd, &r, data, crc_ok)) return -1;
  return r.status;
}

// Range fetches against the file's own bytes: every range of a block is served,
// with the right bytes and a CRC that matches them; ranges outside the block are
// refused without dropping the connection. `bs`: the length of block 0.
void check_ranges(int fd, uint64_t hi, uint64_t lo, const std::string& ds, const std::string& file,
                  const std::string& path, size_t bs) {
  std::vector<uint8_t> content;
  if (FILE* f = fopen(file.c_str(), "rb")) {
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) content.insert(content.end(), buf, buf + n);
    fclose(f);
  }
  const size_t size = content.size();
  check("range test: the file is more than one block", size > bs);
  if (size <= bs) return;
  const uint32_t seg = 32 * 1024;
  const uint32_t b0 = static_cast<uint32_t>(bs);
  const uint32_t b1 = static_cast<uint32_t>(std::min(bs, size - bs));  // the file's last block is short
  struct Range {
    uint64_t block;
    uint32_t offset, length;  // length 0: to the end of the block
  };
  const Range ranges[] = {
      {0, 0, 1},          {0, 1, 0},          {0, seg - 1, 2},    {0, seg, seg},       {0, seg, 3 * seg},
      {0, 100, 500000},   {0, b0 - 1, 1},     {0, b0 - 1, 0},     {0, 0, b0},          {0, 12345, 2 * seg + 7},
      {1, 0, 0},          {1, 5, 1000},       {1, b1 - 1, 0},     {1, seg, b1 - seg},  {1, b1 - seg - 3, seg + 3},
  };
  int good = 0, total = 0;
  for (const Range& r : ranges) {
    std::vector<uint8_t> data;
    bool crc_ok = false;
    const uint32_t blen = r.block == 0 ? b0 : b1;
    const uint32_t want_len = r.length ? r.length : blen - r.offset;
    const int st = fetch(fd, hi, lo, ds, path, &data, &crc_ok, r.block, r.offset, r.length);
    const size_t at = r.block * bs + r.offset;
    const bool ok = st == 0 && crc_ok && data.size() == want_len &&
                    std::equal(data.begin(), data.end(), content.begin() + static_cast<long>(at));
    if (!ok)
      printf("  range block %llu [%u, +%u): status %d, %zu bytes, crc %s\n", static_cast<unsigned long long>(r.block),
             r.offset, r.length, st, data.size(), crc_ok ? "ok" : "bad");
    good += ok;
    ++total;
  }
  char what[96];
  snprintf(what, sizeof what, "range fetches: right bytes and CRC (%d of %d)", good, total);
  check(what, good == total);
  std::vector<uint8_t> data;
  bool crc_ok = false;
  const int bad = static_cast<int>(peer::Status::kBadRequest);
  check("a range starting at the block's end is refused", fetch(fd, hi, lo, ds, path, &data, &crc_ok, 1, b1, 0) == bad);
  check("a range past the block's end is refused", fetch(fd, hi, lo, ds, path, &data, &crc_ok, 0, b0 - 10, 11) == bad);
  check("a block past the file's end is refused", fetch(fd, hi, lo, ds, path, &data, &crc_ok, 2, 0, 0) == bad);
  check("after refused ranges the connection still serves",
        fetch(fd, hi, lo, ds, path, &data, &crc_ok, 1, 7, 9) == 0 && crc_ok &&
            std::equal(data.begin(), data.end(), content.begin() + static_cast<long>(bs + 7)) && data.size() == 9);
}

// Sends `count` fetches of block 0 of `path` (its whole length `block_len`),
// prints "sent", reads nothing for `hold_s` seconds, then reads every reply.
int no_read(int fd, uint64_t hi, uint64_t lo, const std::string& ds, const std::string& path,
            uint32_t block_len, int count, int hold_s) {
  std::vector<uint8_t> body(sizeof(peer::FetchBody) + ds.size() + path.size());
  peer::FetchBody f{
      hi, lo, 0, 0, block_len, static_cast<uint16_t>(ds.size()), static_cast<uint16_t>(path.size()),
      0};
  memcpy(body.data(), &f, sizeof f);
  memcpy(body.data() + sizeof f, ds.data(), ds.size());
  memcpy(body.data() + sizeof f + ds.size(), path.data(), path.size());
  for (int i = 0; i < count; ++i)
    send_msg(fd, peer::Op::kFetch, static_cast<uint32_t>(100 + i), body.data(),
             static_cast<uint32_t>(body.size()));
  printf("sent %d fetches\n", count);
  fflush(stdout);
  sleep(static_cast<unsigned>(hold_s));
  timeval tv{30, 0};  // the owner may be slow to resume under load; not forever
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int good = 0;
  std::vector<uint8_t> data;
  for (int i = 0; i < count; ++i) {
    peer::FetchReplyBody r;
    bool ok = false;
    if (!recv_fetch_reply(fd, &r, &data, &ok)) break;
    good += ok && r.status == 0 && r.length == block_len;
  }
  printf("replies: %d of %d right\n", good, count);
  return good == count ? 0 : 1;
}

FileKey key_of(const std::string& ds, const std::string& root, const std::string& path,
               struct stat* st) {
  if (stat((root + "/" + path).c_str(), st) != 0) {
    perror("stat");
    exit(2);
  }
  return file_key_of(ds.data(), ds.size(), path.data(), path.size(), *st);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 10 && strcmp(argv[1], "--no-read") == 0) {
    g_host = argv[2];
    g_port = atoi(argv[3]);
    auto secret = load_secret(argv[4]);
    if (!secret) {
      fprintf(stderr, "%s\n", secret.error().message.c_str());
      return 2;
    }
    struct stat st {};
    const FileKey key = key_of(argv[5], argv[6], argv[7], &st);
    const int fd = authenticate(*secret);
    if (fd < 0) {
      fprintf(stderr, "dcbadpeer: authentication failed\n");
      return 1;
    }
    // The agent under test runs 1 MiB blocks (tests/integration/lib.sh).
    const uint32_t block_len = static_cast<uint32_t>(std::min<off_t>(st.st_size, 1 << 20));
    return no_read(fd, key.hi, key.lo, argv[5], argv[7], block_len, atoi(argv[8]), atoi(argv[9]));
  }
  if (argc != 7 && argc != 8) {
    fprintf(
        stderr,
        "usage: dcbadpeer HOST PORT SECRET_FILE DATASET_NAME DATASET_ROOT REL_PATH [INTEGRITY]\n");
    return 2;
  }
  if (argc == 8) {
    const std::string m = argv[7];
    g_integrity = m == "crc"       ? peer::Integrity::kCrc
                  : m == "encrypt" ? peer::Integrity::kEncrypt
                                   : peer::Integrity::kMac;
  }
  g_host = argv[1];
  g_port = atoi(argv[2]);
  auto secret = load_secret(argv[3]);
  if (!secret) {
    fprintf(stderr, "%s\n", secret.error().message.c_str());
    return 2;
  }
  g_secret = *secret;
  const std::string ds = argv[4], root = argv[5], path = argv[6];
  struct stat st {};
  const FileKey key = key_of(ds, root, path, &st);
  const uint64_t hi = key.hi, lo = key.lo;

  uint8_t nonce[32];
  peer::HelloV2Body hb = hello_body(nonce, g_integrity);
  std::vector<uint8_t> good_hello = message(peer::Op::kHelloV2, &hb, sizeof hb);

  expect_dropped("garbage bytes", std::vector<uint8_t>(24, 0x5a));
  {
    auto m = good_hello;
    peer::Header h;
    memcpy(&h, m.data(), sizeof h);
    h.magic ^= 1;
    h.header_crc = 0;
    h.header_crc = crc32c(&h, sizeof h);
    memcpy(m.data(), &h, sizeof h);
    expect_dropped("wrong magic", m);
    h.magic = peer::kMagic;
    h.version = 7;
    h.header_crc = 0;
    h.header_crc = crc32c(&h, sizeof h);
    memcpy(m.data(), &h, sizeof h);
    expect_dropped("wrong version", m);
    h.version = peer::kVersion;
    h.body_len = peer::kMaxControlBody + 1;
    h.header_crc = 0;
    h.header_crc = crc32c(&h, sizeof h);
    memcpy(m.data(), &h, sizeof h);
    expect_dropped("oversized body length", m);
  }
  {
    auto m = good_hello;
    m[9] ^= 0xff;  // request id: header CRC no longer matches
    expect_dropped("bad header CRC", m);
    m = good_hello;
    m.back() ^= 0xff;  // last nonce byte: body CRC no longer matches
    expect_dropped("bad body CRC", m);
    m = good_hello;
    m.resize(sizeof(peer::Header) + 10);
    expect_dropped("truncated body, then end of stream", m, true);
  }
  {
    peer::FetchBody f{hi, lo, 0, 0, 0, 1, 1, 0};
    std::vector<uint8_t> body(sizeof f + 2, 'a');
    memcpy(body.data(), &f, sizeof f);
    expect_dropped("fetch before authentication", message(peer::Op::kFetch, body.data(), static_cast<uint32_t>(body.size())));
    expect_dropped("ping before authentication", message(peer::Op::kPing, nullptr, 0));
  }
  {
    // A v1 Hello (version 1, the retired opcode): the unsealed protocol is not spoken.
    peer::HelloBody v1{};
    snprintf(v1.node_id, sizeof v1.node_id, "tester");
    const uint16_t v1_version = 1;
    peer::Header h{peer::kMagic, v1_version, static_cast<uint16_t>(peer::Op::kHello), 1, sizeof v1,
                   crc32c(&v1, sizeof v1), 0};
    h.header_crc = crc32c(&h, sizeof h);
    std::vector<uint8_t> m(sizeof h + sizeof v1);
    memcpy(m.data(), &h, sizeof h);
    memcpy(m.data() + sizeof h, &v1, sizeof v1);
    expect_dropped("a v1 (unsealed protocol) hello", m);
  }
  check("authentication with the wrong secret is refused", authenticate(g_secret + "x") < 0);
  for (const auto other :
       {peer::Integrity::kCrc, peer::Integrity::kMac, peer::Integrity::kEncrypt}) {
    if (other == g_integrity) continue;
    char what[96];
    snprintf(what, sizeof what, "a peer asking for integrity %d (not the agent's) is refused",
             static_cast<int>(other));
    check(what, authenticate(g_secret, other) < 0);
  }
  int fd = authenticate(g_secret);
  check("authentication with the right secret", fd >= 0);
  if (fd >= 0) {
    std::vector<uint8_t> data;
    bool crc_ok = false;
    check("fetch from an unknown dataset is refused",
          fetch(fd, hi, lo, "no-such-dataset", path, &data, &crc_ok) == static_cast<int>(peer::Status::kUnknownDataset));
    check("fetch with '..' in the path is refused",
          fetch(fd, hi, lo, ds, "../../etc/passwd", &data, &crc_ok) == static_cast<int>(peer::Status::kBadRequest));
    check("fetch through a symlink out of the root is refused",
          fetch(fd, hi, lo, ds, "escape", &data, &crc_ok) == static_cast<int>(peer::Status::kOutsideDataset));
    check("fetch with a key that is not the file's is refused",
          fetch(fd, hi, lo + 1, ds, path, &data, &crc_ok) == static_cast<int>(peer::Status::kStale));
    const int st = fetch(fd, hi, lo, ds, path, &data, &crc_ok);
    check("a valid fetch returns the block with a matching CRC", st == 0 && !data.empty() && crc_ok);
    // The connection survived the refusals, and stays usable.
    if (st == 0 && !data.empty()) check_ranges(fd, hi, lo, ds, root + "/" + path, path, data.size());
    close_session(fd);
  }
  // Last: these fetch the good file, which the agent then keeps open (by key).
  if (g_integrity != peer::Integrity::kCrc) {
    // Authenticated, then frames the session keys do not vouch for: each drops the
    // connection (and is counted as an authentication error, not a rejected peer).
    peer::FetchBody f{
        hi, lo, 0, 0, 0, static_cast<uint16_t>(ds.size()), static_cast<uint16_t>(path.size()), 0};
    std::vector<uint8_t> body(sizeof f + ds.size() + path.size());
    memcpy(body.data(), &f, sizeof f);
    memcpy(body.data() + sizeof f, ds.data(), ds.size());
    memcpy(body.data() + sizeof f + ds.size(), path.data(), path.size());
    const auto blen = static_cast<uint32_t>(body.size());
    auto sealed_then = [&](const char* what, auto&& alter) {
      int fd = authenticate(g_secret);
      if (fd < 0) return check(what, false);
      std::vector<uint8_t> m = frame(fd, peer::Op::kFetch, 5, body.data(), blen);
      alter(fd, m);
      send(fd, m.data(), m.size(), MSG_NOSIGNAL);
      check(what, dropped(fd));
      close_session(fd);
    };
    sealed_then("a sealed fetch with one tag bit flipped is dropped",
                [](int, std::vector<uint8_t>& m) { m.back() ^= 1; });
    sealed_then("a sealed fetch with one body bit flipped is dropped",
                [](int, std::vector<uint8_t>& m) { m[sizeof(peer::Header) + 3] ^= 0x10; });
    sealed_then("a sealed fetch with its request id changed is dropped",
                [](int, std::vector<uint8_t>& m) {
                  peer::Header h;
                  memcpy(&h, m.data(), sizeof h);
                  h.request_id ^= 1;
                  h.header_crc = 0;
                  h.header_crc = crc32c(&h, sizeof h);
                  memcpy(m.data(), &h, sizeof h);
                });
    sealed_then("a sealed fetch sent twice (replayed) is dropped",
                [](int, std::vector<uint8_t>& m) {
                  const auto once = m;
                  m.insert(m.end(), once.begin(), once.end());
                });
    sealed_then("an unsealed fetch after authentication is dropped",
                [&](int, std::vector<uint8_t>& m) {
                  // Twice: the second's first bytes are where the first's tag should be.
                  m = message(peer::Op::kFetch, body.data(), blen);
                  const auto once = m;
                  m.insert(m.end(), once.begin(), once.end());
                });
  }

  printf("%d failure(s)\n", g_failures);
  return g_failures ? 1 : 0;
}
