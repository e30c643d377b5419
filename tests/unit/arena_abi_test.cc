// Pins the binary layout shared between dcagent and shims of other releases.
// A failure here means an ABI break: either undo the change or bump
// kArenaAbiMajor / ctl::kVersion and update these numbers deliberately.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "dc/arena.h"
#include "dc/control.h"
#include "dc/file_key.h"
#include "dc/peer_wire.h"

namespace {

using namespace dc;
// <cxxabi.h> (via gtest) declares a global ::abi; this alias wins over it.
namespace abi = dc::abi;

#define EXPECT_FIELD(T, f, off, size)                     \
  do {                                                    \
    EXPECT_EQ(offsetof(T, f), size_t{off}) << #T "::" #f; \
    EXPECT_EQ(sizeof(T::f), size_t{size}) << #T "::" #f;  \
  } while (0)

// The magics are also recognisable byte strings in a hex dump of the memory.
template <typename T>
bool magic_bytes_are(T magic, const char* text) {
  unsigned char bytes[sizeof(T)];
  memcpy(bytes, &magic, sizeof bytes);
  return memcmp(bytes, text, sizeof bytes) == 0;
}

TEST(ArenaAbi, Constants) {
  EXPECT_EQ(abi::kArenaMagic, 0x314e524141434400ULL);
  EXPECT_TRUE(magic_bytes_are(abi::kArenaMagic, std::string_view("\0DCAARN1", 8).data()));
  EXPECT_EQ(abi::kArenaAbiMajor, 2);  // 2: XXH3-128 file key with inode and ctime
  EXPECT_EQ(abi::kArenaAbiMinor, 1);  // 1: ArenaHeader::retired
  EXPECT_EQ(abi::kArenaHeaderSize, 4096u);
  // Readers stop probing at kMaxProbe: changing it without a major bump would let
  // the agent place entries an older shim never finds.
  EXPECT_EQ(abi::kMaxProbe, 32u);
  EXPECT_EQ(abi::kEntryUsed, 1u);
  EXPECT_EQ(abi::kClientRegionMagic, 0x31474e4952544844ULL);
  EXPECT_TRUE(magic_bytes_are(abi::kClientRegionMagic, "DHTRING1"));
  EXPECT_EQ(abi::kHitRingCapacity, 4096u);
  EXPECT_EQ(abi::kClientRegionBytes, 192u + 4096u * 8u);
}

TEST(ArenaAbi, ArenaHeaderLayout) {
  using H = abi::ArenaHeader;
  EXPECT_EQ(sizeof(H), 4096u);
  EXPECT_EQ(alignof(H), 8u);
  EXPECT_TRUE(std::is_trivially_copyable_v<H>);
  EXPECT_TRUE(std::is_standard_layout_v<H>);
  EXPECT_FIELD(H, magic, 0, 8);
  EXPECT_FIELD(H, abi_major, 8, 2);
  EXPECT_FIELD(H, abi_minor, 10, 2);
  EXPECT_FIELD(H, header_size, 12, 4);
  EXPECT_FIELD(H, generation, 16, 8);
  EXPECT_FIELD(H, page_size, 24, 4);
  EXPECT_FIELD(H, block_size, 28, 4);
  EXPECT_FIELD(H, page_count, 32, 4);
  EXPECT_FIELD(H, index_capacity, 36, 4);
  EXPECT_FIELD(H, index_entry_size, 40, 4);
  EXPECT_FIELD(H, max_probe, 44, 4);
  EXPECT_FIELD(H, index_offset, 48, 8);
  EXPECT_FIELD(H, pages_offset, 56, 8);
  EXPECT_FIELD(H, total_size, 64, 8);
  EXPECT_FIELD(H, retired, 72, 8);  // minor 1
  EXPECT_FIELD(H, reserved, 80, 4096 - 80);
}

TEST(ArenaAbi, IndexEntryLayout) {
  using E = abi::IndexEntry;
  // One cache line, so a seqlock section never spans two lines of the index.
  EXPECT_EQ(sizeof(E), 64u);
  EXPECT_EQ(alignof(E), 8u);
  EXPECT_TRUE(std::is_trivially_copyable_v<E>);
  EXPECT_TRUE(std::is_standard_layout_v<E>);
  EXPECT_FIELD(E, seq, 0, 4);
  EXPECT_FIELD(E, flags, 4, 4);
  EXPECT_FIELD(E, key_hi, 8, 8);
  EXPECT_FIELD(E, key_lo, 16, 8);
  EXPECT_FIELD(E, page_no, 24, 8);
  EXPECT_FIELD(E, slot, 32, 4);
  EXPECT_FIELD(E, page_len, 36, 4);
  EXPECT_FIELD(E, reserved, 40, 24);
}

TEST(ArenaAbi, ClientCountersLayout) {
  using C = abi::ClientCounters;
  EXPECT_EQ(sizeof(C), 64u);
  EXPECT_EQ(alignof(C), 8u);
  EXPECT_FIELD(C, hit_reads, 0, 8);
  EXPECT_FIELD(C, hit_bytes, 8, 8);
  EXPECT_FIELD(C, miss_reads, 16, 8);
  EXPECT_FIELD(C, miss_bytes, 24, 8);
  EXPECT_FIELD(C, fallback_reads, 32, 8);
  EXPECT_FIELD(C, fallback_bytes, 40, 8);
  EXPECT_FIELD(C, reserved, 48, 16);
}

TEST(ArenaAbi, ClientRegionHeaderLayout) {
  using R = abi::ClientRegionHeader;
  EXPECT_EQ(sizeof(R), 192u);
  EXPECT_EQ(alignof(R), 8u);
  EXPECT_TRUE(std::is_trivially_copyable_v<R>);
  EXPECT_FIELD(R, magic, 0, 8);
  EXPECT_FIELD(R, ring_capacity, 8, 4);
  EXPECT_FIELD(R, reserved0, 12, 4);
  EXPECT_FIELD(R, pad0, 16, 48);
  EXPECT_FIELD(R, head, 64, 8);
  EXPECT_FIELD(R, pad1, 72, 56);
  EXPECT_FIELD(R, counters, 128, 64);
  // The ring of records starts right after the header, 8-byte aligned.
  EXPECT_EQ(sizeof(R) % 8, 0u);
}

// Agent and shim compute the home slot independently (and may be different
// releases), so the hash is as much a part of the ABI as the struct layout.
TEST(ArenaAbi, IndexHomeIsPinned) {
  EXPECT_EQ(abi::arena_index_home(0, 0, 0, 1024), 0u);
  EXPECT_EQ(abi::arena_index_home(1, 2, 3, 1u << 20), 0x2799u);
  EXPECT_EQ(abi::arena_index_home(0x0123456789abcdefULL, 0xfedcba9876543210ULL, 77, 1u << 30),
            0x28fd90eeu);
  // Capacity only masks: the low bits of the big-table answer are the small one.
  const uint64_t big = abi::arena_index_home(0xdeadbeefULL, 0xcafef00dULL, 12345, 1u << 30);
  EXPECT_EQ(abi::arena_index_home(0xdeadbeefULL, 0xcafef00dULL, 12345, 4096), big & 4095);
}

TEST(ArenaAbi, HitRecordEncoding) {
  EXPECT_EQ(abi::hit_record(0x12345678u, 0xaaaabbbbccccddddULL), 0x12345678ccccddddULL);
  EXPECT_EQ(abi::hit_record(0, 0), 0u);
  EXPECT_EQ(abi::hit_record(UINT32_MAX, UINT64_MAX), UINT64_MAX);
}

TEST(ControlAbi, Constants) {
  EXPECT_EQ(ctl::kMagic, 0x31434344u);
  EXPECT_TRUE(magic_bytes_are(ctl::kMagic, "DCC1"));
  EXPECT_EQ(ctl::kVersion, 1);
  EXPECT_EQ(ctl::kMaxRequest, 8192u);
  EXPECT_EQ(ctl::kMaxReply, 65536u);
  EXPECT_EQ(ctl::kMaxPath, 4096u);
  EXPECT_EQ(ctl::kMaxFetchBlocks, 64u);
  EXPECT_EQ(ctl::kMaxDatasets, 64u);
  EXPECT_EQ(ctl::kHelloWantRing, 1u);
  // The largest request must fit: a fetch with a maximal path.
  EXPECT_LE(sizeof(ctl::FetchRequest) + ctl::kMaxPath, ctl::kMaxRequest);
}

TEST(ControlAbi, OpcodesNeverRenumbered) {
  using ctl::Op;
  EXPECT_TRUE((std::is_same_v<std::underlying_type_t<Op>, uint16_t>));
  EXPECT_EQ(static_cast<uint16_t>(Op::kHello), 1);
  EXPECT_EQ(static_cast<uint16_t>(Op::kHelloReply), 2);
  EXPECT_EQ(static_cast<uint16_t>(Op::kFetch), 3);
  EXPECT_EQ(static_cast<uint16_t>(Op::kFetchReply), 4);
  EXPECT_EQ(static_cast<uint16_t>(Op::kStats), 5);
  EXPECT_EQ(static_cast<uint16_t>(Op::kStatsReply), 6);
  EXPECT_EQ(static_cast<uint16_t>(Op::kInvalidate), 7);
  EXPECT_EQ(static_cast<uint16_t>(Op::kInvalidateReply), 8);
  EXPECT_EQ(static_cast<uint16_t>(Op::kRing), 9);
  EXPECT_EQ(static_cast<uint16_t>(Op::kPeers), 10);
  EXPECT_EQ(static_cast<uint16_t>(Op::kTextReply), 11);
}

TEST(ControlAbi, StatusCodesNeverRenumbered) {
  using ctl::Status;
  EXPECT_TRUE((std::is_same_v<std::underlying_type_t<Status>, int32_t>));
  EXPECT_EQ(static_cast<int32_t>(Status::kOk), 0);
  EXPECT_EQ(static_cast<int32_t>(Status::kBadRequest), 1);
  EXPECT_EQ(static_cast<int32_t>(Status::kNotFound), 2);
  EXPECT_EQ(static_cast<int32_t>(Status::kStale), 3);
  EXPECT_EQ(static_cast<int32_t>(Status::kNoSpace), 4);
  EXPECT_EQ(static_cast<int32_t>(Status::kIoError), 5);
  EXPECT_EQ(static_cast<int32_t>(Status::kOutsideDataset), 6);
  EXPECT_EQ(static_cast<int32_t>(Status::kBusy), 7);
  EXPECT_EQ(static_cast<int32_t>(Status::kShuttingDown), 8);
}

TEST(ControlAbi, RolesNeverRenumbered) {
  EXPECT_TRUE((std::is_same_v<std::underlying_type_t<ctl::Role>, uint32_t>));
  EXPECT_EQ(static_cast<uint32_t>(ctl::Role::kShim), 1u);
  EXPECT_EQ(static_cast<uint32_t>(ctl::Role::kCtl), 2u);
}

TEST(ControlAbi, MsgHeaderLayout) {
  using M = ctl::MsgHeader;
  EXPECT_EQ(sizeof(M), 16u);
  EXPECT_EQ(alignof(M), 4u);
  EXPECT_FIELD(M, magic, 0, 4);
  EXPECT_FIELD(M, version, 4, 2);
  EXPECT_FIELD(M, op, 6, 2);
  EXPECT_FIELD(M, length, 8, 4);
  EXPECT_FIELD(M, request_id, 12, 4);

  const M h = ctl::make_header(ctl::Op::kStats, 16, 99);
  EXPECT_EQ(h.magic, ctl::kMagic);
  EXPECT_EQ(h.version, ctl::kVersion);
  EXPECT_EQ(h.op, 5);
  EXPECT_EQ(h.length, 16u);
  EXPECT_EQ(h.request_id, 99u);
}

TEST(ControlAbi, HelloLayout) {
  using Q = ctl::HelloRequest;
  EXPECT_EQ(sizeof(Q), 32u);
  EXPECT_EQ(alignof(Q), 4u);
  EXPECT_FIELD(Q, h, 0, 16);
  EXPECT_FIELD(Q, role, 16, 4);
  EXPECT_FIELD(Q, flags, 20, 4);
  EXPECT_FIELD(Q, pid, 24, 4);
  EXPECT_FIELD(Q, reserved, 28, 4);

  using R = ctl::HelloReply;
  EXPECT_EQ(sizeof(R), 48u);
  EXPECT_EQ(alignof(R), 8u);
  EXPECT_TRUE(std::is_trivially_copyable_v<R>);
  EXPECT_FIELD(R, h, 0, 16);
  EXPECT_FIELD(R, status, 16, 4);
  EXPECT_FIELD(R, dataset_count, 20, 4);
  EXPECT_FIELD(R, arena_size, 24, 8);
  EXPECT_FIELD(R, arena_generation, 32, 8);
  EXPECT_FIELD(R, fd_count, 40, 4);
  EXPECT_FIELD(R, reserved, 44, 4);

  using D = ctl::DatasetRecord;
  EXPECT_EQ(sizeof(D), 8u);
  EXPECT_EQ(alignof(D), 4u);
  EXPECT_FIELD(D, name_len, 0, 2);
  EXPECT_FIELD(D, root_len, 2, 2);
  EXPECT_FIELD(D, reserved, 4, 4);
}

TEST(ControlAbi, FetchLayout) {
  using Q = ctl::FetchRequest;
  EXPECT_EQ(sizeof(Q), 48u);
  EXPECT_EQ(alignof(Q), 8u);
  EXPECT_TRUE(std::is_trivially_copyable_v<Q>);
  EXPECT_FIELD(Q, h, 0, 16);
  EXPECT_FIELD(Q, key_hi, 16, 8);
  EXPECT_FIELD(Q, key_lo, 24, 8);
  EXPECT_FIELD(Q, first_block, 32, 8);
  EXPECT_FIELD(Q, block_count, 40, 4);
  EXPECT_FIELD(Q, dataset_id, 44, 2);
  EXPECT_FIELD(Q, path_len, 46, 2);

  using R = ctl::FetchReply;
  EXPECT_EQ(sizeof(R), 24u);
  EXPECT_EQ(alignof(R), 4u);
  EXPECT_FIELD(R, h, 0, 16);
  EXPECT_FIELD(R, status, 16, 4);
  EXPECT_FIELD(R, blocks_ready, 20, 4);
}

TEST(ControlAbi, InvalidateLayout) {
  using Q = ctl::InvalidateRequest;
  EXPECT_EQ(sizeof(Q), 24u);
  EXPECT_EQ(alignof(Q), 4u);
  EXPECT_FIELD(Q, h, 0, 16);
  EXPECT_FIELD(Q, dataset_id, 16, 2);
  EXPECT_FIELD(Q, path_len, 18, 2);
  EXPECT_FIELD(Q, reserved, 20, 4);

  using R = ctl::InvalidateReply;
  EXPECT_EQ(sizeof(R), 24u);
  EXPECT_EQ(alignof(R), 4u);
  EXPECT_FIELD(R, h, 0, 16);
  EXPECT_FIELD(R, status, 16, 4);
  EXPECT_FIELD(R, pages_dropped, 20, 4);
}

TEST(ControlAbi, StatsLayout) {
  EXPECT_EQ(sizeof(ctl::StatsRequest), 16u);
  EXPECT_FIELD(ctl::StatsRequest, h, 0, 16);

  using R = ctl::StatsReply;
  EXPECT_EQ(sizeof(R), 24u);
  EXPECT_EQ(alignof(R), 4u);
  EXPECT_FIELD(R, h, 0, 16);
  EXPECT_FIELD(R, status, 16, 4);
  EXPECT_FIELD(R, count, 20, 4);

  using S = ctl::StatEntry;
  EXPECT_EQ(sizeof(S), 48u);
  EXPECT_EQ(alignof(S), 8u);
  EXPECT_FIELD(S, name, 0, 40);
  EXPECT_FIELD(S, value, 40, 8);
}

TEST(ControlAbi, TextReplyLayout) {
  using T = ctl::TextReply;
  EXPECT_EQ(sizeof(T), 24u);
  EXPECT_FIELD(T, h, 0, 16);
  EXPECT_FIELD(T, status, 16, 4);
  EXPECT_FIELD(T, length, 20, 4);
}

// The peer protocol crosses machines: every size, offset and number is pinned.
TEST(PeerAbi, HeaderAndBodies) {
  using H = peer::Header;
  EXPECT_EQ(sizeof(H), 24u);
  EXPECT_FIELD(H, magic, 0, 4);
  EXPECT_FIELD(H, version, 4, 2);
  EXPECT_FIELD(H, op, 6, 2);
  EXPECT_FIELD(H, request_id, 8, 4);
  EXPECT_FIELD(H, body_len, 12, 4);
  EXPECT_FIELD(H, body_crc, 16, 4);
  EXPECT_FIELD(H, header_crc, 20, 4);
  EXPECT_EQ(sizeof(peer::HelloBody), 96u);
  EXPECT_FIELD(peer::HelloBody, nonce, 64, 32);
  EXPECT_EQ(sizeof(peer::ChallengeBody), 128u);
  EXPECT_FIELD(peer::ChallengeBody, proof, 96, 32);
  EXPECT_EQ(sizeof(peer::AuthBody), 32u);
  EXPECT_EQ(sizeof(peer::HelloV2Body), 104u);
  EXPECT_FIELD(peer::HelloV2Body, node_id, 0, 64);
  EXPECT_FIELD(peer::HelloV2Body, nonce, 64, 32);
  EXPECT_FIELD(peer::HelloV2Body, integrity, 96, 1);
  EXPECT_FIELD(peer::HelloV2Body, reserved, 97, 7);
  EXPECT_EQ(sizeof(peer::ChallengeV2Body), 136u);
  EXPECT_FIELD(peer::ChallengeV2Body, node_id, 0, 64);
  EXPECT_FIELD(peer::ChallengeV2Body, nonce, 64, 32);
  EXPECT_FIELD(peer::ChallengeV2Body, proof, 96, 32);
  EXPECT_FIELD(peer::ChallengeV2Body, integrity, 128, 1);
  EXPECT_FIELD(peer::ChallengeV2Body, reserved, 129, 7);
  EXPECT_EQ(peer::kTagBytes, 16u);
  EXPECT_EQ(peer::kKeyBytes, 16u);
  using F = peer::FetchBody;
  EXPECT_EQ(sizeof(F), 40u);
  EXPECT_FIELD(F, key_hi, 0, 8);
  EXPECT_FIELD(F, key_lo, 8, 8);
  EXPECT_FIELD(F, block, 16, 8);
  EXPECT_FIELD(F, offset, 24, 4);
  EXPECT_FIELD(F, length, 28, 4);
  EXPECT_FIELD(F, dataset_len, 32, 2);
  EXPECT_FIELD(F, path_len, 34, 2);
  using R = peer::FetchReplyBody;
  EXPECT_EQ(sizeof(R), 16u);
  EXPECT_FIELD(R, status, 0, 4);
  EXPECT_FIELD(R, length, 4, 4);
  EXPECT_FIELD(R, data_crc, 8, 4);
  EXPECT_EQ(peer::kMagic, 0x31504344u);
  EXPECT_EQ(peer::kVersion, 2);  // 2: XXH3-128 file keys with inode and ctime; sealed frames
}

TEST(PeerAbi, OpcodesAndStatusNeverRenumbered) {
  EXPECT_EQ(static_cast<uint16_t>(peer::Op::kHello), 1);
  EXPECT_EQ(static_cast<uint16_t>(peer::Op::kChallenge), 2);
  EXPECT_EQ(static_cast<uint16_t>(peer::Op::kAuth), 3);
  EXPECT_EQ(static_cast<uint16_t>(peer::Op::kAuthOk), 4);
  EXPECT_EQ(static_cast<uint16_t>(peer::Op::kFetch), 5);
  EXPECT_EQ(static_cast<uint16_t>(peer::Op::kFetchReply), 6);
  EXPECT_EQ(static_cast<uint16_t>(peer::Op::kPing), 7);
  EXPECT_EQ(static_cast<uint16_t>(peer::Op::kPong), 8);
  EXPECT_EQ(static_cast<uint16_t>(peer::Op::kHelloV2), 9);
  EXPECT_EQ(static_cast<uint16_t>(peer::Op::kChallengeV2), 10);
  EXPECT_EQ(static_cast<uint8_t>(peer::Integrity::kCrc), 0);
  EXPECT_EQ(static_cast<uint8_t>(peer::Integrity::kMac), 1);
  EXPECT_EQ(static_cast<uint8_t>(peer::Integrity::kEncrypt), 2);
  EXPECT_EQ(static_cast<int32_t>(peer::Status::kOk), 0);
  EXPECT_EQ(static_cast<int32_t>(peer::Status::kBadRequest), 1);
  EXPECT_EQ(static_cast<int32_t>(peer::Status::kNotFound), 2);
  EXPECT_EQ(static_cast<int32_t>(peer::Status::kStale), 3);
  EXPECT_EQ(static_cast<int32_t>(peer::Status::kIoError), 4);
  EXPECT_EQ(static_cast<int32_t>(peer::Status::kOutsideDataset), 5);
  EXPECT_EQ(static_cast<int32_t>(peer::Status::kNotOwner), 6);
  EXPECT_EQ(static_cast<int32_t>(peer::Status::kBusy), 7);
  EXPECT_EQ(static_cast<int32_t>(peer::Status::kUnknownDataset), 8);
}

// The file key is in every index entry and every peer FetchBody: shims, agents and
// peers of one major must compute the same value for the same file version. These
// are XXH3-128 over the encoding documented in file_key.h, computed with the system
// libxxhash's one-shot function; see also tests/unit/file_key_test.cc.
TEST(FileKeyAbi, PinnedValues) {
  const char ds[] = "imagenet", path[] = "train/n01440764/n01440764_10026.JPEG";
  const FileKey k =
      make_file_key(ds, sizeof ds - 1, path, sizeof path - 1,
                    FileVersion{110592, 1700000000123456789ULL, 131077, 1700000000987654321ULL});
  EXPECT_EQ(k.hi, 0x67b8379e5a7fb381ULL);
  EXPECT_EQ(k.lo, 0xd0fd211a9f4f6869ULL);
  const FileKey e = make_file_key("", 0, "", 0, FileVersion{0, 0, 0, 0});
  EXPECT_EQ(e.hi, 0x505cd4e066810498ULL);
  EXPECT_EQ(e.lo, 0xe255222d4cbbadbaULL);
  EXPECT_EQ(sizeof(FileKey), 16u);
}

}  // namespace
