// Request handlers of the agent: hello (hand out the arena), fetch (fill blocks,
// once per block however many ask), invalidate, stats; and the hit-ring drain.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include "common/log.h"
#include "daemon/agent.h"
#include "dc/barrier.h"

namespace dc {
namespace {

// A fetch token: which pending request, and which of its blocks.
// The one place an internal error becomes a control-protocol status.
ctl::Status status_of(Errc e) {
  switch (e) {
    case Errc::kNotFound: return ctl::Status::kNotFound;
    case Errc::kStale: return ctl::Status::kStale;
    case Errc::kPermission: return ctl::Status::kOutsideDataset;
    case Errc::kInvalidArgument: return ctl::Status::kBadRequest;
    case Errc::kNoSpace: return ctl::Status::kNoSpace;
    default: return ctl::Status::kIoError;
  }
}

uint64_t make_token(uint64_t pending_id, uint32_t index) { return (pending_id << 8) | index; }

// A writable region for one client, sealed so the client cannot resize it under
// the agent's mapping (a shrink would make the agent fault).
int create_client_region(abi::ClientRegionHeader** out) {
  int fd = memfd_create("dc-client", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -1;
  if (ftruncate(fd, abi::kClientRegionBytes) != 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    close(fd);
    return -1;
  }
  void* p = mmap(nullptr, abi::kClientRegionBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    close(fd);
    return -1;
  }
  auto* h = static_cast<abi::ClientRegionHeader*>(p);
  h->ring_capacity = abi::kHitRingCapacity;
  __atomic_store_n(&h->magic, abi::kClientRegionMagic, __ATOMIC_RELEASE);
  *out = h;
  return fd;
}

}  // namespace

void Agent::handle_hello(Session& s, const Request& r) {
  s.greeted = true;
  s.role = r.role;
  std::vector<uint8_t> out(sizeof(ctl::HelloReply));
  for (const auto& d : config_.datasets) {
    ctl::DatasetRecord rec{static_cast<uint16_t>(d.name.size()), static_cast<uint16_t>(d.path.size()), 0};
    size_t at = out.size();
    out.resize(at + sizeof rec + d.name.size() + d.path.size());
    memcpy(out.data() + at, &rec, sizeof rec);
    memcpy(out.data() + at + sizeof rec, d.name.data(), d.name.size());
    memcpy(out.data() + at + sizeof rec + d.name.size(), d.path.data(), d.path.size());
    out.resize((out.size() + 7) & ~size_t{7});
  }
  std::vector<int> fds;
  ctl::HelloReply reply{};
  reply.status = static_cast<int32_t>(ctl::Status::kOk);
  if (r.role == ctl::Role::kShim) {
    auto ro = arena_->open_readonly();
    if (!ro) {
      DC_LOG_ERROR("%s", ro.error().message.c_str());
      reply.status = static_cast<int32_t>(ctl::Status::kBusy);
    } else {
      fds.push_back(*ro);
      if (r.hello_flags & ctl::kHelloWantRing) {
        s.region_fd = create_client_region(&s.region);
        if (s.region_fd >= 0) fds.push_back(s.region_fd);
      }
    }
  }
  reply.h = ctl::make_header(ctl::Op::kHelloReply, static_cast<uint32_t>(out.size()), r.request_id);
  reply.dataset_count = static_cast<uint32_t>(config_.datasets.size());
  reply.arena_size = arena_->size();
  reply.arena_generation = arena_->generation();
  reply.fd_count = static_cast<uint32_t>(fds.size());
  memcpy(out.data(), &reply, sizeof reply);
  const uint64_t id = s.id;
  send_or_close(s, out.data(), out.size(), fds);
  if (!fds.empty()) close(fds[0]);  // the read-only arena fd is the client's now
  // The region stays mapped here; its descriptor is no longer needed by the agent.
  if (auto it = sessions_.find(id); it != sessions_.end() && it->second.region_fd >= 0) {
    close(it->second.region_fd);
    it->second.region_fd = -1;
  }
}

void Agent::reply_fetch_now(uint64_t session_id, uint32_t request_id, ctl::Status st) {
  if (st != ctl::Status::kOk) ++counters_.fetch_errors;
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;  // the client left
  ctl::FetchReply rep{ctl::make_header(ctl::Op::kFetchReply, sizeof(ctl::FetchReply), request_id),
                      static_cast<int32_t>(st), 0};
  send_or_close(it->second, &rep, sizeof rep);
}

void Agent::handle_fetch(Session& s, const Request& r) {
  ++counters_.fetch_requests;
  // Every path through here and the waiter ends in exactly one reply.
  with_origin_file(r.dataset_id, r.path, r.key,
                   [this, sid = s.id, r](const Result<OriginFile>& file) {
                     if (!file) {
                       if (file.error().code == Errc::kStale) ++counters_.stale_fetches;
                       DC_LOG_DEBUG("fetch %s: %s", r.path.c_str(), file.error().message.c_str());
                       reply_fetch_now(sid, r.request_id, status_of(file.error().code));
                       return;
                     }
                     fetch_from(sid, r, file.value());
                   });
}

void Agent::fetch_from(uint64_t session_id, const Request& r, const OriginFile& file) {
  const uint64_t bs = arena_->block_size();
  const uint64_t nblocks = (file.size + bs - 1) / bs;
  if (r.first_block >= nblocks) {
    reply_fetch_now(session_id, r.request_id, ctl::Status::kBadRequest);
    return;
  }
  const uint32_t count = static_cast<uint32_t>(std::min<uint64_t>(r.block_count, nblocks - r.first_block));
  const uint64_t pid = next_pending_id_++;
  PendingFetch& p = pending_[pid];
  p.session_id = session_id;
  p.request_id = r.request_id;
  p.remaining = count;
  p.ok.assign(count, 0);
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t block = r.first_block + i;
    BlockCache::Handle h;
    switch (begin_block(file, r.key, r.dataset_id, r.path, block, make_token(pid, i), false, &h)) {
      case BlockCache::Begin::kResident:
        p.ok[i] = 1;
        --p.remaining;
        break;
      case BlockCache::Begin::kJoined:
      case BlockCache::Begin::kStarted:
        break;
      case BlockCache::Begin::kNoSpace:
        p.failure = ctl::Status::kNoSpace;
        --p.remaining;
        break;
    }
  }
  const bool done = p.remaining == 0;
  prefetch(file, r.key, r.dataset_id, r.path,
           readahead_->on_fetch(r.key, {r.dataset_id, r.path}, r.first_block, count, nblocks));
  flush_fills();
  if (done) reply_fetch(pid);
}

void Agent::prefetch(const OriginFile& file, FileKey key, uint32_t dataset_id, const std::string& path,
                     Readahead::Plan plan) {
  const uint64_t bs = arena_->block_size();
  for (uint64_t block = plan.first; block < plan.first + plan.count; ++block) {
    if (block * bs >= file.size) break;
    BlockCache::Handle h;
    const auto begun = begin_block(file, key, dataset_id, path, block, BlockCache::kNoWaiter, true, &h);
    if (begun == BlockCache::Begin::kNoSpace) break;
    if (begun == BlockCache::Begin::kStarted) ++counters_.readahead_blocks;
  }
  flush_fills();
}

BlockCache::Begin Agent::begin_block(const OriginFile& file, FileKey key, uint32_t dataset_id, const std::string& path,
                                     uint64_t block, uint64_t token, bool prefetch, BlockCache::Handle* h) {
  const uint64_t bs = arena_->block_size();
  const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(bs, file.size - block * bs));
  const int owner = cluster_ ? cluster_->owner(key, block) : Cluster::kSelf;
  const bool copy = owner >= 0;  // another live member owns it
  const auto begun = cache_->begin(key, block, len, token, h, prefetch, copy);
  if (begun != BlockCache::Begin::kStarted) return begun;
  if (copy) {
    std::vector<iovec> iov;
    cache_->iovecs(*h, &iov);
    if (cluster_->fetch(owner, key, block, len, config_.datasets[dataset_id].name, path, iov, *h)) {
      peer_fills_[*h] = PeerFill{key, dataset_id, path, block, len, 1};
      return begun;
    }
  }
  submit_fill(file, *h, block, len);
  return begun;
}

void Agent::submit_fill(const OriginFile& file, BlockCache::Handle h, uint64_t block, uint32_t len) {
  const bool continues = !run_.handles.empty() && run_.fd == file.fd && !run_.ends_short &&
                         block == run_.first_block + run_.handles.size();
  if (!continues) flush_fills();
  if (run_.handles.empty()) {
    run_.fd = file.fd;
    run_.direct_align = file.direct_align;
    run_.first_block = block;
    run_.bytes = 0;
  }
  run_.handles.push_back(h);
  run_.bytes += len;
  run_.ends_short = len < arena_->block_size();
  if (run_.handles.size() >= kMaxRunBlocks || run_.ends_short) flush_fills();
}

void Agent::flush_fills() {
  if (run_.handles.empty()) return;
  std::vector<iovec> iov, one;
  for (BlockCache::Handle h : run_.handles) {
    cache_->iovecs(h, &one);
    iov.insert(iov.end(), one.begin(), one.end());
  }
  if (run_.direct_align && !iov.empty()) {
    // O_DIRECT transfers whole device blocks: round the last buffer up (it stays
    // inside its page slot); the read itself ends short at end of file.
    iovec& last = iov.back();
    last.iov_len = (last.iov_len + run_.direct_align - 1) / run_.direct_align * run_.direct_align;
  }
  uint64_t user = run_.handles.front();
  if (run_.handles.size() > 1) {
    user = kFillGroupBit | next_fill_group_++;
    fill_groups_[user] = run_.handles;
  }
  reader_->submit(std::move(run_.fd), iov, run_.first_block * arena_->block_size(), run_.bytes,
                  user);
  run_.fd.reset();
  run_.handles.clear();
}

void Agent::on_fill_done(uint64_t user, bool ok, int err) {
  if (!ok) DC_LOG_WARN("origin read failed: %s", strerror(err));
  counters_.bytes_origin = reader_->bytes_read();
  std::vector<BlockCache::Handle> handles;
  if (user & kFillGroupBit) {
    auto it = fill_groups_.find(user);
    if (it == fill_groups_.end()) return;
    handles = std::move(it->second);
    fill_groups_.erase(it);
  } else {
    handles.push_back(static_cast<BlockCache::Handle>(user));
  }
  for (BlockCache::Handle h : handles) {
    if (ok) ++counters_.blocks_filled;
    for (uint64_t token : cache_->finish(h, ok)) block_done(token, ok);
  }
}

void Agent::block_done(uint64_t token, bool ok) {
  if (token & kPeerTokenBit) {
    peer_request_done(token & ~kPeerTokenBit, ok);
    return;
  }
  const uint64_t pid = token >> 8;
  auto it = pending_.find(pid);
  if (it == pending_.end()) return;
  PendingFetch& p = it->second;
  p.ok[token & 0xff] = ok ? 1 : 0;
  if (!ok) p.failure = ctl::Status::kIoError;
  if (--p.remaining == 0) reply_fetch(pid);
}

void Agent::reply_fetch(uint64_t pid) {
  auto it = pending_.find(pid);
  if (it == pending_.end()) return;
  PendingFetch p = std::move(it->second);
  pending_.erase(it);
  uint32_t ready = 0;
  while (ready < p.ok.size() && p.ok[ready]) ++ready;
  ctl::Status st = ready == p.ok.size() ? ctl::Status::kOk
                   : p.failure != ctl::Status::kOk ? p.failure : ctl::Status::kIoError;
  if (st != ctl::Status::kOk) ++counters_.fetch_errors;
  auto s = sessions_.find(p.session_id);
  if (s == sessions_.end()) return;  // the client left; the blocks stay cached
  ctl::FetchReply rep{ctl::make_header(ctl::Op::kFetchReply, sizeof(ctl::FetchReply), p.request_id),
                      static_cast<int32_t>(st), ready};
  send_or_close(s->second, &rep, sizeof rep);
}

void Agent::handle_invalidate(Session& s, const Request& r) {
  ++counters_.invalidations;
  uint32_t dropped = 0;
  for (FileKey k : origin_->keys_seen(r.dataset_id, r.path)) {
    dropped += cache_->invalidate(k);
    origin_->forget(k);
  }
  // The version now at the path needs a stat of the origin: off the loop. The
  // writer waits for the reply; nobody else does.
  auto current = std::make_shared<std::optional<Result<OriginFile>>>();
  origin_workers_->submit(
      [files = origin_, ds = r.dataset_id, rel = r.path, current] {
        current->emplace(files->open_file(ds, rel));
      },
      [this, sid = s.id, request_id = r.request_id, dropped, current]() mutable {
        if (const Result<OriginFile>& cur = **current) {
          dropped += cache_->invalidate(cur.value().key);
          origin_->forget(cur.value().key);
        }
        current->reset();  // closes the descriptor the stat opened
        auto it = sessions_.find(sid);
        if (it == sessions_.end()) return;
        ctl::InvalidateReply rep{
            ctl::make_header(ctl::Op::kInvalidateReply, sizeof rep, request_id),
            static_cast<int32_t>(ctl::Status::kOk), dropped};
        send_or_close(it->second, &rep, sizeof rep);
      });
}

void Agent::drain_hit_rings() {
  for (auto& [id, s] : sessions_) {
    if (!s.region) continue;
    const uint64_t head = ring_head(&s.region->head);
    const uint64_t* recs = reinterpret_cast<const uint64_t*>(s.region + 1);
    uint64_t tail = s.ring_tail;
    // The client owns head: distrust it. Far ahead means records were overwritten
    // (or the value is garbage): keep only the newest capacity's worth.
    if (head - tail > abi::kHitRingCapacity) tail = head - abi::kHitRingCapacity;
    for (; tail != head; ++tail) {
      const uint64_t rec = ring_get(&recs[tail & (abi::kHitRingCapacity - 1)]);
      FileKey key;
      uint64_t block;
      if (!cache_->record_hit(static_cast<uint32_t>(rec >> 32), static_cast<uint32_t>(rec), &key, &block))
        continue;
      const Readahead::Plan plan = readahead_->on_hit(key, block);
      if (plan.count == 0) continue;
      const Readahead::Origin* o = readahead_->origin_of(key);
      if (!o) continue;
      // A file no longer open is reopened off the loop; the readahead follows then.
      with_origin_file(
          o->dataset_id, o->path, key,
          [this, key, ds = o->dataset_id, path = o->path, plan](const Result<OriginFile>& file) {
            if (file) prefetch(file.value(), key, ds, path, plan);
          });
    }
    s.ring_tail = tail;
  }
}

StatList Agent::collect_stats() {
  abi::ClientCounters c = departed_;
  uint64_t clients = 0;
  for (auto& [id, s] : sessions_) {
    if (!s.region) continue;
    ++clients;
    add_counters(&c, snapshot_counters(s.region));
  }
  const uint64_t ps = arena_->page_size();
  const EtcdMembership::Counters etcd = etcd_ ? etcd_->counters() : EtcdMembership::Counters{};
  return StatList{
      {"hit_reads", c.hit_reads},
      {"miss_reads", c.miss_reads},
      {"fallback_reads", c.fallback_reads},
      {"bytes_hit", c.hit_bytes},
      {"bytes_miss", c.miss_bytes},
      {"bytes_fallback", c.fallback_bytes},
      {"bytes_origin", reader_->bytes_read()},
      {"cache_bytes_used", cache_->resident_pages() * ps},
      {"cache_bytes_total", uint64_t{arena_->page_count()} * ps},
      {"cache_pages_filling", cache_->filling_pages()},
      {"clients", clients},
      {"sessions", sessions_.size()},
      {"sessions_opened", counters_.sessions_opened},
      {"fetch_requests", counters_.fetch_requests},
      {"blocks_filled", counters_.blocks_filled},
      {"fetch_errors", counters_.fetch_errors},
      {"stale_fetches", counters_.stale_fetches},
      {"evictions", cache_->evictions()},
      {"invalidations", counters_.invalidations},
      {"readahead_blocks", counters_.readahead_blocks},
      {"bytes_peer", cluster_ ? cluster_->counters().bytes_peer : 0},
      {"bytes_served_to_peers", cluster_ ? cluster_->counters().bytes_served_to_peers : 0},
      {"peer_fetches", cluster_ ? cluster_->counters().peer_fetches : 0},
      {"peer_fetch_failures", cluster_ ? cluster_->counters().peer_fetch_failures : 0},
      {"peer_crc_errors", cluster_ ? cluster_->counters().peer_crc_errors : 0},
      {"peer_auth_errors", cluster_ ? cluster_->counters().peer_auth_errors : 0},
      {"peer_requests_served", cluster_ ? cluster_->counters().peer_requests_served : 0},
      {"peers_rejected", cluster_ ? cluster_->counters().peers_rejected : 0},
      // bounds: deadlines and caps on peers.
      {"peer_fetch_timeouts", cluster_ ? cluster_->counters().peer_fetch_timeouts : 0},
      {"peer_not_owner", cluster_ ? cluster_->counters().peer_not_owner : 0},
      {"peer_requests_not_owner", cluster_ ? cluster_->counters().peer_requests_not_owner : 0},
      {"peer_handshake_timeouts", cluster_ ? cluster_->counters().peer_handshake_timeouts : 0},
      {"peers_over_cap", cluster_ ? cluster_->counters().peers_over_cap : 0},
      {"peer_reads_paused", cluster_ ? cluster_->counters().peer_reads_paused : 0},
      {"peer_accept_pauses", cluster_ ? cluster_->accept_pauses() : 0},
      {"control_accept_pauses", listen_pause_.pauses()},
      {"etcd_resyncs", etcd.resyncs},
      {"etcd_watch_events", etcd.watch_events},
      {"etcd_bad_responses", etcd.bad_responses},
      {"etcd_bad_members", etcd.bad_members},
      {"etcd_lease_grants", etcd.lease_grants},
      {"etcd_tls_failures", etcd.tls_failures},
      {"etcd_auth_failures", etcd.auth_failures},
      {"cache_bytes_copies", cache_->copy_pages() * ps},
      {"bad_messages", counters_.bad_messages},
      {"sessions_rejected", counters_.sessions_rejected},
      {"origin_files_open", origin_->open_count()},
      {"origin_reads_in_flight", reader_->in_flight()},
      {"index_entries_used", arena_->index_used()},
      {"blocks_not_indexed", cache_->unpublishable()},  // index probe run full: readers miss them
      {"page_size", ps},
      {"block_size", arena_->block_size()},
      // The peer server's send path (config cluster.send) and what it did.
      {"peer_send_syscalls", cluster_ ? cluster_->send_counters().syscalls : 0},
      {"peer_sendfile_calls", cluster_ ? cluster_->send_counters().sendfile_calls : 0},
      {"peer_zc_calls", cluster_ ? cluster_->send_counters().zc_calls : 0},
      {"peer_zc_completed", cluster_ ? cluster_->send_counters().zc_completed : 0},
      {"peer_zc_copied", cluster_ ? cluster_->send_counters().zc_copied : 0},
      {"peer_zc_enobufs", cluster_ ? cluster_->send_counters().zc_enobufs : 0},
      {"peer_pinned_replies", cluster_ ? cluster_->send_counters().pinned_replies : 0},
      {"peer_over_pin_cap", cluster_ ? cluster_->send_counters().over_pin_cap : 0},
      {"peer_pins_dropped_on_close", cluster_ ? cluster_->send_counters().pins_dropped_on_close : 0},
      {"cache_pinned_blocks", cache_->pinned_blocks()},
      {"cache_bad_unpins", cache_->bad_unpins()},
  };
}

void Agent::handle_stats(Session& s, const Request& r) {
  StatList stats = collect_stats();
  std::vector<uint8_t> out(sizeof(ctl::StatsReply) + stats.size() * sizeof(ctl::StatEntry));
  ctl::StatsReply rep{ctl::make_header(ctl::Op::kStatsReply, static_cast<uint32_t>(out.size()), r.request_id),
                      static_cast<int32_t>(ctl::Status::kOk), static_cast<uint32_t>(stats.size())};
  memcpy(out.data(), &rep, sizeof rep);
  for (size_t i = 0; i < stats.size(); ++i) {
    ctl::StatEntry e{};
    snprintf(e.name, sizeof e.name, "%s", stats[i].first.c_str());
    e.value = stats[i].second;
    memcpy(out.data() + sizeof rep + i * sizeof e, &e, sizeof e);
  }
  send_or_close(s, out.data(), out.size());
}

}  // namespace dc
