// The agent's side of the cluster: blocks fetched from their owners (with one
// retry on a CRC mismatch, then the origin), and peers served the blocks this node
// owns, from the arena.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "common/log.h"
#include "daemon/agent.h"
#include "daemon/cache/block_range.h"
#include "daemon/epoll_tag.h"
#include "daemon/net/auth.h"

namespace dc {
namespace {

uint64_t peer_tag(uint64_t id) { return epoll_tag::make(epoll_tag::kPeer, id); }

peer::Status peer_status_of(Errc e) {
  switch (e) {
    case Errc::kNotFound: return peer::Status::kNotFound;
    case Errc::kStale: return peer::Status::kStale;
    case Errc::kPermission: return peer::Status::kOutsideDataset;
    case Errc::kInvalidArgument: return peer::Status::kBadRequest;
    default: return peer::Status::kIoError;
  }
}

}  // namespace

Status Agent::start_cluster() {
  auto secret = load_secret(config_.cluster.secret_file);
  if (!secret) return secret.error();
  Cluster::Hooks hooks;
  hooks.serve = [this](const PeerServeRequest& r) { serve_peer(r); };
  hooks.fetched = [this](uint64_t cookie, bool ok, bool crc_error) { on_peer_fetched(cookie, ok, crc_error); };
  cluster_ = std::make_unique<Cluster>(config_.cluster, std::move(*secret), std::move(hooks));
  // A client-only node owns nothing: its whole arena holds copies.
  const uint64_t pages = arena_->page_count();
  cache_->set_copies_cap(config_.cluster.serve ? static_cast<uint64_t>(pages * config_.cluster.copies_share) : pages);
  cache_->set_compute_crcs(config_.cluster.serve);
  SendSource src;
  src.path = send_path_of(config_.cluster.send);
  src.file_fd = arena_->fd();
  src.file_base = arena_->base();
  src.file_size = arena_->size();
  src.release = [this](uint64_t pin) { cache_->unpin(static_cast<BlockCache::Handle>(pin - 1)); };
  cluster_->set_send_source(std::move(src));
  if (auto st = cluster_->start(epoll_fd_, peer_tag); !st) return st;
  if (config_.cluster.membership == "etcd") {
    membership_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = epoll_tag::make(epoll_tag::kMembership);
    if (membership_fd_ < 0 || epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, membership_fd_, &ev) != 0)
      return make_error(Errc::kIo, "cannot watch the etcd member list");
    etcd_ = std::make_unique<EtcdMembership>(config_.cluster);
    etcd_->start(membership_fd_);
  }
  return ok_status();
}

void Agent::on_membership_changed() {
  uint64_t n;
  while (read(membership_fd_, &n, sizeof n) > 0) {
  }
  if (etcd_) cluster_->set_peers(etcd_->peers());
}

void Agent::on_peer_fetched(uint64_t handle, bool ok, bool crc_error) {
  auto it = peer_fills_.find(handle);
  if (it == peer_fills_.end()) return;
  PeerFill f = it->second;
  if (ok) {
    peer_fills_.erase(it);
    ++counters_.blocks_filled;
    for (uint64_t token : cache_->finish(static_cast<BlockCache::Handle>(handle), true)) block_done(token, true);
    return;
  }
  // A CRC mismatch is retried once from the owner; anything else, or a second
  // failure, reads the origin: never wrong bytes, at worst one origin read.
  std::vector<iovec> iov;
  cache_->iovecs(static_cast<BlockCache::Handle>(handle), &iov);
  if (crc_error && f.attempts < 2) {
    it->second.attempts++;
    // Ask the owner again (looked up anew: the member list may have changed).
    const int owner = cluster_->owner(f.key, f.block);
    if (owner >= 0 &&
        cluster_->fetch(owner, f.key, f.block, f.len, config_.datasets[f.dataset_id].name, f.path, iov, handle))
      return;
  }
  peer_fills_.erase(it);
  with_origin_file(f.dataset_id, f.path, f.key, [this, handle, f](const Result<OriginFile>& file) {
    const auto h = static_cast<BlockCache::Handle>(handle);
    if (!file) {
      for (uint64_t token : cache_->finish(h, false)) block_done(token, false);
      return;
    }
    submit_fill(file.value(), h, f.block, f.len);
    flush_fills();
  });
}

void Agent::serve_peer(const PeerServeRequest& req) {
  auto refuse = [&](peer::Status st) { cluster_->reply(req.conn_id, req.request_id, st, {}, 0); };
  // Only blocks of configured datasets, named by dataset name; the path is
  // confined to that dataset's root by OriginFiles.
  uint32_t ds = 0;
  while (ds < config_.datasets.size() && config_.datasets[ds].name != req.dataset) ++ds;
  if (ds == config_.datasets.size()) return refuse(peer::Status::kUnknownDataset);
  with_origin_file(ds, req.path, req.key, [this, req](const Result<OriginFile>& file) {
    if (!file)
      return cluster_->reply(req.conn_id, req.request_id, peer_status_of(file.error().code), {}, 0);
    serve_peer_from(req, file.value());
  });
}

void Agent::serve_peer_from(const PeerServeRequest& req, const OriginFile& f) {
  const OriginFile* file = &f;
  auto refuse = [&](peer::Status st) { cluster_->reply(req.conn_id, req.request_id, st, {}, 0); };
  const uint64_t bs = arena_->block_size();
  if (req.block >= (file->size + bs - 1) / bs) return refuse(peer::Status::kBadRequest);
  const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(bs, file->size - req.block * bs));
  // Any range within the block: [offset, offset + length), length 0 = to its end.
  // The block is filled whole either way; the reply carries the range.
  if (req.offset >= len || (req.length != 0 && uint64_t{req.offset} + req.length > len))
    return refuse(peer::Status::kBadRequest);
  // No wait cycle between nodes: a peer's request never joins a fill that itself
  // waits on a peer. Two nodes whose placements disagree (an etcd change in
  // flight, different static weights) could otherwise each wait for the other's
  // copy of the same block, forever. The asker reads the origin instead.
  for (const auto& [handle, fill] : peer_fills_) {
    if (fill.key == req.key && fill.block == req.block) {
      return refuse(peer::Status::kNotOwner);
    }
  }
  const uint64_t id = next_peer_request_++;
  peer_requests_[id] = req;
  BlockCache::Handle h;
  // The owner reads the origin itself (never asks another peer), once, however
  // many nodes ask at the same time: concurrent requests join one fill.
  switch (cache_->begin(req.key, req.block, len, kPeerTokenBit | id, &h)) {
    case BlockCache::Begin::kResident: peer_request_done(id, true); break;
    case BlockCache::Begin::kJoined: break;
    case BlockCache::Begin::kStarted:
      submit_fill(*file, h, req.block, len);
      flush_fills();
      break;
    case BlockCache::Begin::kNoSpace:
      peer_requests_.erase(id);
      refuse(peer::Status::kBusy);
      break;
  }
}

void Agent::peer_request_done(uint64_t id, bool ok) {
  auto it = peer_requests_.find(id);
  if (it == peer_requests_.end()) return;
  const PeerServeRequest req = std::move(it->second);
  peer_requests_.erase(it);
  std::vector<iovec> pages;
  uint32_t len = 0;
  const std::vector<uint32_t>* segs = nullptr;
  BlockCache::Handle h = 0;
  if (!ok || !cache_->resident_pages(req.key, req.block, &pages, &len, &segs, &h) || req.offset >= len) {
    cluster_->reply(req.conn_id, req.request_id, peer::Status::kIoError, {}, 0);
    return;
  }
  const uint32_t n = req.length ? std::min(req.length, len - req.offset) : len - req.offset;
  std::vector<iovec> range;
  slice_block(pages, req.offset, n, &range);
  // From the segment CRCs (no pass over the bytes but the partial segments at the
  // range's edges); a block that has none (e.g. a copy) is summed now.
  const uint32_t data_crc = block_range_crc(pages, *segs, len, req.offset, n);
  // Sent in place (zerocopy, sendfile): the block stays pinned, not evicted nor
  // reused, until the connection says the kernel is done with its pages.
  uint64_t pin = 0;
  if (cluster_->sends_in_place()) {
    cache_->pin(h);
    pin = uint64_t{h} + 1;
  }
  cluster_->reply(req.conn_id, req.request_id, peer::Status::kOk, range, data_crc, pin);
}

void Agent::handle_text(Session& s, const Request& r) {
  std::string text;
  if (!cluster_) text = "{\"error\": \"this agent is not in a cluster\"}";
  else text = r.op == ctl::Op::kRing ? cluster_->ring_json() : cluster_->peers_json();
  if (text.size() > ctl::kMaxReply - sizeof(ctl::TextReply)) text.resize(ctl::kMaxReply - sizeof(ctl::TextReply));
  std::vector<uint8_t> out(sizeof(ctl::TextReply) + text.size());
  ctl::TextReply rep{ctl::make_header(ctl::Op::kTextReply, static_cast<uint32_t>(out.size()), r.request_id),
                     static_cast<int32_t>(ctl::Status::kOk), static_cast<uint32_t>(text.size())};
  memcpy(out.data(), &rep, sizeof rep);
  memcpy(out.data() + sizeof rep, text.data(), text.size());
  send_or_close(s, out.data(), out.size());
}

}  // namespace dc
