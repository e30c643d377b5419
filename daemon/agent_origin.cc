// Origin files for the agent's handlers: found open, or opened off the loop by
// OriginWorkers while the callers that need the file wait (and only they).
#include <memory>
#include <optional>

#include "daemon/agent.h"

namespace dc {
namespace {
constexpr size_t kMaxOpensWaiting = 16384;
}  // namespace

void Agent::with_origin_file(uint32_t dataset_id, const std::string& rel, FileKey key,
                             FileWaiter then) {
  if (auto f = origin_->find(key)) {
    then(*f);
    return;
  }
  std::string path_id = std::to_string(dataset_id) + "/" + rel;
  // Bounded memory whatever clients ask: past this many opens waiting for a
  // worker, a fetch of a file not open is refused (the shim reads the file itself).
  if (!opening_.count(path_id) && opening_.size() >= kMaxOpensWaiting) {
    then(make_error(Errc::kBusy, rel + ": too many origin opens waiting"));
    return;
  }
  auto [it, first] = opening_.try_emplace(std::move(path_id));
  it->second.emplace_back(key, std::move(then));
  if (!first) return;  // joins the open already under way
  // The job only opens and stats; what it found is handed to the loop, which
  // alone touches the open-file table, the cache and the sessions.
  auto opened = std::make_shared<std::optional<Result<OriginFile>>>();
  origin_workers_->submit(
      [files = origin_, dataset_id, rel, opened] {
        opened->emplace(files->open_file(dataset_id, rel));
      },
      [this, dataset_id, rel, opened] { on_origin_opened(dataset_id, rel, **opened); });
}

void Agent::on_origin_opened(uint32_t dataset_id, const std::string& rel,
                             const Result<OriginFile>& opened) {
  auto node = opening_.extract(std::to_string(dataset_id) + "/" + rel);
  if (node.empty()) return;
  auto& waiters = node.mapped();
  bool wanted = false;
  for (const auto& [key, then] : waiters) wanted = wanted || (opened && opened.value().key == key);
  // Kept open only as a version someone asked for (a newer one is opened when
  // its key is asked for).
  if (wanted) origin_->adopt(dataset_id, rel, opened.value());
  for (auto& [key, then] : waiters) {
    if (!opened)
      then(opened.error());
    else if (!(opened.value().key == key))
      then(make_error(Errc::kStale, rel + ": file changed since it was opened"));
    else
      then(opened);
  }
}

}  // namespace dc
