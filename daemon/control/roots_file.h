// The dataset roots, written beside the control socket (<socket>.roots) so a shim
// can tell dataset opens from all others without asking the agent: an agent that
// is alive but not answering (stopped, stuck in a syscall on a hung origin) then
// delays no open of a file outside the datasets. The content is the dataset part
// of the hello reply (ctl::HelloReply with no descriptors, then the records), so
// the shim reads it with the parser it already has; a hello still has the last word.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "daemon/config/config.h"

namespace dc {

std::string roots_file_path(const std::string& socket_path);
// The hello reply body for `datasets`: HelloReply (status, dataset_count, length
// filled; no arena fields) then one DatasetRecord + name + root each, 8-aligned.
std::vector<uint8_t> encode_dataset_roots(const std::vector<DatasetConfig>& datasets);
// Writes the file atomically (a temporary, then rename) with the socket's mode and
// group: who may connect may read it, no one else.
Status write_roots_file(const std::string& socket_path, const std::vector<DatasetConfig>& datasets,
                        uint32_t mode, uint32_t gid);
// Removes it at a clean exit (a killed agent leaves it: still right for its config).
void remove_roots_file(const std::string& socket_path);

}  // namespace dc
