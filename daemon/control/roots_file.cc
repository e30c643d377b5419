#include "daemon/control/roots_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dc/control.h"

namespace dc {

std::string roots_file_path(const std::string& socket_path) {
  return socket_path + ".roots";
}

std::vector<uint8_t> encode_dataset_roots(const std::vector<DatasetConfig>& datasets) {
  std::vector<uint8_t> out(sizeof(ctl::HelloReply));
  for (const auto& d : datasets) {
    ctl::DatasetRecord rec{static_cast<uint16_t>(d.name.size()),
                           static_cast<uint16_t>(d.path.size()), 0};
    const size_t at = out.size();
    out.resize(at + sizeof rec + d.name.size() + d.path.size());
    memcpy(out.data() + at, &rec, sizeof rec);
    memcpy(out.data() + at + sizeof rec, d.name.data(), d.name.size());
    memcpy(out.data() + at + sizeof rec + d.name.size(), d.path.data(), d.path.size());
    out.resize((out.size() + 7) & ~size_t{7});
  }
  ctl::HelloReply reply{};
  reply.h = ctl::make_header(ctl::Op::kHelloReply, static_cast<uint32_t>(out.size()), 0);
  reply.status = static_cast<int32_t>(ctl::Status::kOk);
  reply.dataset_count = static_cast<uint32_t>(datasets.size());
  memcpy(out.data(), &reply, sizeof reply);
  return out;
}

Status write_roots_file(const std::string& socket_path, const std::vector<DatasetConfig>& datasets,
                        uint32_t mode, uint32_t gid) {
  const std::vector<uint8_t> body = encode_dataset_roots(datasets);
  if (body.size() >= ctl::kMaxReply)
    return make_error(Errc::kInvalidArgument, "dataset roots too long");
  const std::string path = roots_file_path(socket_path);
  const std::string tmp = path + ".tmp";
  unlink(tmp.c_str());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return make_error(Errc::kIo, "create " + tmp + ": " + strerror(errno));
  bool ok = write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size());
  // Root-owned agents give the file the socket's group; chown fails harmlessly otherwise.
  if (fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0) {
  }
  ok = ok && fchmod(fd, mode & 0666) == 0;
  const int e = errno;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return make_error(Errc::kIo, "write " + path + ": " + strerror(ok ? errno : e));
  }
  return ok_status();
}

void remove_roots_file(const std::string& socket_path) {
  unlink(roots_file_path(socket_path).c_str());
}

}  // namespace dc
