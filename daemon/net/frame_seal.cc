#include "daemon/net/frame_seal.h"

#include <openssl/evp.h>

#include <climits>
#include <cstring>

namespace dc {
namespace {

constexpr int kIvBytes = 12;

EVP_CIPHER_CTX* ctx_of(void* p) {
  return static_cast<EVP_CIPHER_CTX*>(p);
}

}  // namespace

Result<std::unique_ptr<FrameSeal>> FrameSeal::create(const SessionKey& key, bool encrypt,
                                                     bool sealing) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return make_error(Errc::kIo, "AES-GCM: no cipher context");
  const int r = sealing ? EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), nullptr, key.data(), nullptr)
                        : EVP_DecryptInit_ex(ctx, EVP_aes_128_gcm(), nullptr, key.data(), nullptr);
  if (r != 1 || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, kIvBytes, nullptr) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return make_error(Errc::kIo, "AES-GCM: cannot set up the cipher");
  }
  return std::unique_ptr<FrameSeal>(new FrameSeal(ctx, encrypt, sealing));
}

FrameSeal::~FrameSeal() {
  EVP_CIPHER_CTX_free(ctx_of(ctx_));
}

bool FrameSeal::begin(const void* aad, size_t n) {
  uint8_t iv[kIvBytes] = {};
  for (int i = 0; i < 8; ++i) iv[4 + i] = static_cast<uint8_t>(next_ >> (8 * i));
  ++next_;
  EVP_CIPHER_CTX* ctx = ctx_of(ctx_);
  const int r = sealing_ ? EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, iv)
                         : EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, iv);
  open_ = r == 1;
  if (!open_) return false;
  int len = 0;
  return n == 0 || EVP_CipherUpdate(ctx, nullptr, &len, static_cast<const uint8_t*>(aad),
                                    static_cast<int>(n)) == 1;
}

bool FrameSeal::update(const uint8_t* in, uint8_t* out, size_t n) {
  if (!open_) return false;
  EVP_CIPHER_CTX* ctx = ctx_of(ctx_);
  while (n > 0) {
    const int step = n > (1u << 30) ? (1 << 30) : static_cast<int>(n);
    int len = 0;
    // mac: more AAD (out = nullptr); encrypt: the cipher (CTR) writes `step` bytes.
    if (EVP_CipherUpdate(ctx, encrypt_ ? out : nullptr, &len, in, step) != 1) return false;
    in += step;
    if (encrypt_) out += step;
    n -= static_cast<size_t>(step);
  }
  return true;
}

bool FrameSeal::finish_seal(uint8_t tag[peer::kTagBytes]) {
  if (!open_ || !sealing_) return false;
  open_ = false;
  EVP_CIPHER_CTX* ctx = ctx_of(ctx_);
  uint8_t tail[16];
  int len = 0;
  return EVP_EncryptFinal_ex(ctx, tail, &len) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, peer::kTagBytes, tag) == 1;
}

bool FrameSeal::finish_open(const uint8_t tag[peer::kTagBytes]) {
  if (!open_ || sealing_) return false;
  open_ = false;
  EVP_CIPHER_CTX* ctx = ctx_of(ctx_);
  uint8_t t[peer::kTagBytes];
  memcpy(t, tag, sizeof t);
  uint8_t tail[16];
  int len = 0;
  // DecryptFinal compares the tag in constant time.
  return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, peer::kTagBytes, t) == 1 &&
         EVP_DecryptFinal_ex(ctx, tail, &len) == 1;
}

}  // namespace dc
