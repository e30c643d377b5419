// One direction of a sealed peer connection (include/dc/peer_wire.h, "Integrity"):
// AES-128-GCM under that direction's session key, one GCM message per part
// (a control part, or a reply's data part), numbered 0, 1, 2, ... The 96-bit GCM
// nonce is that number: the sender never uses one twice under a key, and the
// receiver opens parts only in the order they were sealed, so a part replayed,
// dropped, reordered, or taken from another connection or direction fails its tag.
//
// A part is begin(header) once, update() over the payload in any number of pieces
// (as it leaves or arrives), then finish_seal() or finish_open(). In mac mode the
// payload is authenticated only (GCM AAD, i.e. GMAC) and update() leaves it as it
// is, so the sender may send arena pages in place; in encrypt mode update()
// encrypts (seal) or decrypts (open) it into `out` (may equal `in`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/result.h"
#include "daemon/net/auth.h"
#include "dc/peer_wire.h"

namespace dc {

class FrameSeal {
 public:
  // `sealing`: this end sends with it (else it opens what the peer sent).
  // `encrypt`: Integrity::kEncrypt (else kMac).
  static Result<std::unique_ptr<FrameSeal>> create(const SessionKey& key, bool encrypt,
                                                   bool sealing);
  ~FrameSeal();
  FrameSeal(const FrameSeal&) = delete;
  FrameSeal& operator=(const FrameSeal&) = delete;

  bool encrypts() const { return encrypt_; }
  uint64_t parts() const { return next_; }  // parts begun so far

  // Starts the next part, authenticating `aad` (the message header). False if
  // OpenSSL fails: the connection must then be dropped.
  bool begin(const void* aad, size_t n);
  // `n` bytes of the payload, in order. `out` is used in encrypt mode only.
  bool update(const uint8_t* in, uint8_t* out, size_t n);
  bool finish_seal(uint8_t tag[peer::kTagBytes]);
  // True only if the tag matches everything begin() and update() saw.
  bool finish_open(const uint8_t tag[peer::kTagBytes]);

 private:
  FrameSeal(void* ctx, bool encrypt, bool sealing)
      : ctx_(ctx), encrypt_(encrypt), sealing_(sealing) {}
  void* ctx_;  // EVP_CIPHER_CTX, keyed once; begin() sets only the nonce
  bool encrypt_;
  bool sealing_;
  bool open_ = false;  // a part is begun and not finished
  uint64_t next_ = 0;
};

}  // namespace dc
