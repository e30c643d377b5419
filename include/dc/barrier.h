// Every memory-ordering primitive used on shared memory (the arena, the per-client
// hit ring) lives here, so each barrier is written once with the reason it exists.
//
// The arena has exactly one writer (dcagent) and many readers (shims in other
// processes, mapping it read-only). Readers never store to shared cache lines; they
// detect concurrent change with a per-entry sequence counter (a seqlock):
//
//   writer:  seq = s + 1 (odd)   -> release fence -> write fields/page -> seq = s + 2 (release)
//   reader:  s1 = seq (acquire)  -> copy fields/page -> acquire fence -> s2 = seq; ok iff s1 == s2, even
//
// Plain GCC/Clang __atomic builtins are used because the fields are plain integers
// inside a mapping shared between processes, not std::atomic objects.
#pragma once

#include <cstdint>

namespace dc {

// Start of a seqlock read. Acquire: the reader must not see field or page contents
// older than this sequence value, so those loads may not move above this one.
inline uint32_t seq_read_begin(const uint32_t* seq) {
  return __atomic_load_n(seq, __ATOMIC_ACQUIRE);
}

// End of a seqlock read. The acquire fence keeps the copies of fields and page bytes
// from moving below the re-load of the counter: if any copied byte came from a
// writer that started after `begin`, the writer's odd store is visible here.
inline bool seq_read_valid(const uint32_t* seq, uint32_t begin) {
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  return (begin & 1u) == 0 && __atomic_load_n(seq, __ATOMIC_RELAXED) == begin;
}

// Writer: mark the entry unstable before touching it. The release fence orders the
// odd store before every later store to fields or page bytes, so a reader that saw
// any of those stores also sees the odd (or a later) counter on its re-check.
inline void seq_write_begin(uint32_t* seq) {
  uint32_t s = __atomic_load_n(seq, __ATOMIC_RELAXED);
  __atomic_store_n(seq, s + 1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
}

// Writer: publish. Release so the fields and page bytes written before are visible to
// any reader whose acquire load sees the new even value.
inline void seq_write_end(uint32_t* seq) {
  uint32_t s = __atomic_load_n(seq, __ATOMIC_RELAXED);
  __atomic_store_n(seq, s + 1, __ATOMIC_RELEASE);
}

// Field access inside a seqlock section. Relaxed atomics (not plain loads) so the
// compiler cannot tear or re-read a field; ordering comes from the seq helpers above.
template <typename T>
inline T field_load(const T* p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}
template <typename T>
inline void field_store(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

// Hit ring (many producers in shims, one consumer in the agent). Producers claim a
// slot with a relaxed fetch-add: losing or overwriting a record is harmless (it is a
// hint), so no ordering with the consumer is needed beyond atomicity of each record.
inline uint64_t ring_claim(uint64_t* head) { return __atomic_fetch_add(head, 1, __ATOMIC_RELAXED); }
inline void ring_put(uint64_t* slot, uint64_t rec) { __atomic_store_n(slot, rec, __ATOMIC_RELAXED); }
inline uint64_t ring_get(const uint64_t* slot) { return __atomic_load_n(slot, __ATOMIC_RELAXED); }
// The consumer reads head with acquire so records stored before a producer's claim of
// a later slot are not older than the head it saw (best effort; records are hints).
inline uint64_t ring_head(const uint64_t* head) { return __atomic_load_n(head, __ATOMIC_ACQUIRE); }

}  // namespace dc
