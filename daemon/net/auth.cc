#include "daemon/net/auth.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace dc {
namespace {

// Versioned so a future change of the message layout cannot be confused with this one.
constexpr std::string_view kDomain = "dc-peer-auth-v2";
constexpr std::string_view kKeyDomain = "dc-peer-keys-v2";

void append_field(std::string* msg, std::string_view field) {
  const auto n = static_cast<uint32_t>(field.size());
  for (int i = 0; i < 4; ++i) msg->push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  msg->append(field);
}

// False if OpenSSL fails; callers must then not accept anything, since an
// all-zero "expected" proof would match an all-zero forgery.
bool compute_proof(const std::string& secret, std::string_view role, const uint8_t* my_nonce,
                   const uint8_t* their_nonce, std::string_view my_id, std::string_view their_id,
                   uint8_t integrity, AuthProof* out) {
  std::string msg;
  msg.reserve(kDomain.size() + role.size() + my_id.size() + their_id.size() + 2 * kAuthNonceSize +
              32);
  append_field(&msg, kDomain);
  append_field(&msg, role);
  append_field(&msg, {reinterpret_cast<const char*>(my_nonce), kAuthNonceSize});
  append_field(&msg, {reinterpret_cast<const char*>(their_nonce), kAuthNonceSize});
  append_field(&msg, my_id);
  append_field(&msg, their_id);
  const char mode = static_cast<char>(integrity);
  append_field(&msg, {&mode, 1});
  unsigned int len = 0;
  const unsigned char* r =
      HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out->data(), &len);
  OPENSSL_cleanse(msg.data(), msg.size());
  return r != nullptr && len == out->size();
}

Error secret_error(Errc code, const std::string& path, const std::string& what) {
  return make_error(code, "cluster secret " + path + ": " + what);
}

}  // namespace

Result<std::string> load_secret(const std::string& path) {
  // No O_NOFOLLOW: secrets are often mounted as symlinks (Kubernetes, systemd
  // credentials). Checks use fstat of the opened file, so a swap after the check
  // cannot slip another file in.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int e = errno;
    return secret_error(
        e == ENOENT ? Errc::kNotFound : (e == EACCES ? Errc::kPermission : Errc::kIo), path,
        std::strerror(e));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return secret_error(Errc::kIo, path, std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return secret_error(Errc::kInvalidArgument, path, "not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return secret_error(
        Errc::kPermission, path,
        std::string("is accessible by group or others (mode ") + mode + "); run chmod 600 on it");
  }
  // Read one byte past the limit so a file that grew since fstat is still caught.
  std::string secret(kMaxSecretSize + 1, '\0');
  size_t got = 0;
  while (got < secret.size()) {
    const ssize_t n = ::read(fd, secret.data() + got, secret.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      OPENSSL_cleanse(secret.data(), secret.size());
      return secret_error(Errc::kIo, path, std::strerror(e));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got > kMaxSecretSize) {
    OPENSSL_cleanse(secret.data(), secret.size());
    return secret_error(Errc::kInvalidArgument, path,
                        "larger than " + std::to_string(kMaxSecretSize) + " bytes");
  }
  while (got > 0 && (secret[got - 1] == '\n' || secret[got - 1] == '\r')) --got;
  if (got == 0) {
    return secret_error(Errc::kInvalidArgument, path, "is empty");
  }
  OPENSSL_cleanse(secret.data() + got, secret.size() - got);
  secret.resize(got);
  return secret;
}

void random_nonce(uint8_t out[kAuthNonceSize]) {
  size_t got = 0;
  while (got < kAuthNonceSize) {
    const ssize_t n = ::getrandom(out + got, kAuthNonceSize - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      // Only kernels without getrandom (ENOSYS) get here; OpenSSL has its own seeding.
      if (RAND_bytes(out, static_cast<int>(kAuthNonceSize)) == 1) return;
      std::fputs("dc: no source of randomness for authentication nonces\n", stderr);
      std::abort();
    }
  }
}

AuthProof prove(const std::string& secret, std::string_view role,
                const uint8_t my_nonce[kAuthNonceSize], const uint8_t their_nonce[kAuthNonceSize],
                std::string_view my_id, std::string_view their_id, uint8_t integrity) {
  AuthProof proof{};
  if (!compute_proof(secret, role, my_nonce, their_nonce, my_id, their_id, integrity, &proof))
    proof.fill(0);
  return proof;
}

bool verify(const std::string& secret, std::string_view prover_role,
            const uint8_t prover_nonce[kAuthNonceSize],
            const uint8_t verifier_nonce[kAuthNonceSize], std::string_view prover_id,
            std::string_view verifier_id, uint8_t integrity, const AuthProof& proof) {
  AuthProof expected{};
  if (!compute_proof(secret, prover_role, prover_nonce, verifier_nonce, prover_id, verifier_id,
                     integrity, &expected)) {
    return false;
  }
  const bool same = CRYPTO_memcmp(expected.data(), proof.data(), expected.size()) == 0;
  OPENSSL_cleanse(expected.data(), expected.size());
  return same;
}

namespace {

// One HKDF-SHA256 output of `out_len` bytes.
bool hkdf(const std::string& secret, const std::string& salt, const std::string& info, uint8_t* out,
          size_t out_len) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr);
  if (!ctx) return false;
  size_t len = out_len;
  const bool ok =
      EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0 &&
      EVP_PKEY_CTX_set1_hkdf_salt(ctx, reinterpret_cast<const unsigned char*>(salt.data()),
                                  static_cast<int>(salt.size())) > 0 &&
      EVP_PKEY_CTX_set1_hkdf_key(ctx, reinterpret_cast<const unsigned char*>(secret.data()),
                                 static_cast<int>(secret.size())) > 0 &&
      EVP_PKEY_CTX_add1_hkdf_info(ctx, reinterpret_cast<const unsigned char*>(info.data()),
                                  static_cast<int>(info.size())) > 0 &&
      EVP_PKEY_derive(ctx, out, &len) > 0 && len == out_len;
  EVP_PKEY_CTX_free(ctx);
  return ok;
}

}  // namespace

Result<SessionKeys> derive_session_keys(const std::string& secret,
                                        const uint8_t client_nonce[kAuthNonceSize],
                                        const uint8_t server_nonce[kAuthNonceSize],
                                        std::string_view client_id, std::string_view server_id,
                                        uint8_t integrity) {
  std::string salt(reinterpret_cast<const char*>(client_nonce), kAuthNonceSize);
  salt.append(reinterpret_cast<const char*>(server_nonce), kAuthNonceSize);
  SessionKeys keys;
  bool ok = true;
  for (const bool to_server : {true, false}) {
    std::string info;
    append_field(&info, kKeyDomain);
    append_field(&info, to_server ? "client-to-server" : "server-to-client");
    append_field(&info, client_id);
    append_field(&info, server_id);
    const char mode = static_cast<char>(integrity);
    append_field(&info, {&mode, 1});
    SessionKey& k = to_server ? keys.client_to_server : keys.server_to_client;
    ok = ok && hkdf(secret, salt, info, k.data(), k.size());
  }
  if (!ok) {
    OPENSSL_cleanse(&keys, sizeof keys);
    return make_error(Errc::kIo, "session key derivation (HKDF-SHA256) failed");
  }
  return keys;
}

}  // namespace dc
