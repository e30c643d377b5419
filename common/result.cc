#include "common/result.h"

#include <cerrno>

namespace dc {

const char* errc_name(Errc c) {
  switch (c) {
    case Errc::kOk: return "ok";
    case Errc::kInvalidArgument: return "invalid argument";
    case Errc::kNotFound: return "not found";
    case Errc::kIo: return "i/o error";
    case Errc::kNoSpace: return "no space";
    case Errc::kPermission: return "permission denied";
    case Errc::kStale: return "stale";
    case Errc::kBusy: return "busy";
    case Errc::kProtocol: return "protocol error";
    case Errc::kUnsupported: return "unsupported";
  }
  return "unknown";
}

int to_errno(Errc c) {
  switch (c) {
    case Errc::kOk: return 0;
    case Errc::kInvalidArgument: return EINVAL;
    case Errc::kNotFound: return ENOENT;
    case Errc::kIo: return EIO;
    case Errc::kNoSpace: return ENOSPC;
    case Errc::kPermission: return EACCES;
    case Errc::kStale: return ESTALE;
    case Errc::kBusy: return EBUSY;
    case Errc::kProtocol: return EPROTO;
    case Errc::kUnsupported: return ENOTSUP;
  }
  return EIO;
}

}  // namespace dc
