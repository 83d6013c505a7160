// The DNSSEC primitives that need libcrypto: public keys from DNSKEY
// RDATA, signature verification, DS digests and NSEC3 hashes. Every
// OpenSSL handle is owned by a unique_ptr with its deleter.

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <memory>

#include "diode/resolver/dnssec.hpp"

namespace diode::resolver::dnssec {

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using Bn = std::unique_ptr<BIGNUM, BnFree>;

int as_int(std::size_t n) {
  return static_cast<int>(n);
}

Pkey from_params(const char* type, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
  if (!params) return nullptr;
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0) return nullptr;
  EVP_PKEY* key = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) return nullptr;
  return Pkey(key);
}

// RFC 3110 §2: exponent length (one octet, or zero then two), exponent, modulus.
// Exponents longer than 4 octets are refused: verification cost grows with
// the exponent, and no real key uses one (KeyTrap-style CPU exhaustion).
enum class KeyForm { Ok, Malformed, Unsupported };
KeyForm rsa_key(std::span<const std::uint8_t> k, const AlgorithmPolicy& policy, Pkey& out) {
  if (k.empty()) return KeyForm::Malformed;
  std::size_t pos = 1;
  std::size_t elen = k[0];
  if (elen == 0) {
    if (k.size() < 3) return KeyForm::Malformed;
    elen = (std::size_t{k[1]} << 8) | k[2];
    pos = 3;
  }
  if (elen == 0 || k.size() < pos + elen + 1) return KeyForm::Malformed;
  if (elen > 4) return KeyForm::Unsupported;
  const auto e = k.subspan(pos, elen);
  auto n = k.subspan(pos + elen);
  while (!n.empty() && n[0] == 0) n = n.subspan(1);
  if (n.empty()) return KeyForm::Malformed;
  const std::size_t bits = n.size() * 8;
  if (bits < policy.rsa_min_bits || bits > policy.rsa_max_bits + 7) return KeyForm::Unsupported;
  Bn bn_n(BN_bin2bn(n.data(), as_int(n.size()), nullptr));
  Bn bn_e(BN_bin2bn(e.data(), as_int(e.size()), nullptr));
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld) return KeyForm::Malformed;
  if (OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1)
    return KeyForm::Malformed;
  out = from_params("RSA", bld.get());
  return out ? KeyForm::Ok : KeyForm::Malformed;
}

// RFC 6605 §4: the key is Q = x | y, uncompressed, without the 0x04 prefix.
Pkey ec_key(std::span<const std::uint8_t> k, const char* group, std::size_t coord) {
  if (k.size() != 2 * coord) return nullptr;
  std::vector<std::uint8_t> point;
  point.reserve(1 + k.size());
  point.push_back(0x04);
  point.insert(point.end(), k.begin(), k.end());
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld) return nullptr;
  if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1)
    return nullptr;
  return from_params("EC", bld.get());
}

// RFC 6605 §4: the signature is r | s; libcrypto wants DER.
std::optional<std::vector<std::uint8_t>> ecdsa_der(std::span<const std::uint8_t> sig,
                                                   std::size_t coord) {
  if (sig.size() != 2 * coord) return std::nullopt;
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> s(ECDSA_SIG_new());
  if (!s) return std::nullopt;
  BIGNUM* r = BN_bin2bn(sig.data(), as_int(coord), nullptr);
  BIGNUM* ss = BN_bin2bn(sig.data() + coord, as_int(coord), nullptr);
  if (r == nullptr || ss == nullptr || ECDSA_SIG_set0(s.get(), r, ss) != 1) {
    BN_free(r);
    BN_free(ss);
    return std::nullopt;
  }
  const int len = i2d_ECDSA_SIG(s.get(), nullptr);
  if (len <= 0) return std::nullopt;
  std::vector<std::uint8_t> der(static_cast<std::size_t>(len));
  unsigned char* p = der.data();
  if (i2d_ECDSA_SIG(s.get(), &p) != len) return std::nullopt;
  return der;
}

bool digest_verify(EVP_PKEY* key, const EVP_MD* md, std::span<const std::uint8_t> data,
                   std::span<const std::uint8_t> sig) {
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) != 1) return false;
  return EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), data.data(), data.size()) == 1;
}

}  // namespace

bool algorithm_supported(std::uint8_t alg, const AlgorithmPolicy& policy) {
  switch (alg) {
    case algorithm::kRsaSha1:
    case algorithm::kRsaSha1Nsec3:
      return policy.accept_rsa_sha1;
    case algorithm::kRsaSha256:
    case algorithm::kRsaSha512:
    case algorithm::kEcdsaP256:
    case algorithm::kEcdsaP384:
    case algorithm::kEd25519:
    case algorithm::kEd448:
      return true;
    default:
      return false;
  }
}

bool digest_supported(std::uint8_t type, const AlgorithmPolicy& policy) {
  switch (type) {
    case digest::kSha1:
      return policy.accept_ds_sha1;
    case digest::kSha256:
    case digest::kSha384:
      return true;
    default:
      return false;
  }
}

CryptoResult verify_signature(std::uint8_t alg, std::span<const std::uint8_t> public_key,
                              std::span<const std::uint8_t> data,
                              std::span<const std::uint8_t> signature,
                              const AlgorithmPolicy& policy) {
  if (!algorithm_supported(alg, policy)) return CryptoResult::Unsupported;
  Pkey key;
  const EVP_MD* md = nullptr;
  std::vector<std::uint8_t> der;
  std::span<const std::uint8_t> sig = signature;
  switch (alg) {
    case algorithm::kRsaSha1:
    case algorithm::kRsaSha1Nsec3:
    case algorithm::kRsaSha256:
    case algorithm::kRsaSha512: {
      const KeyForm f = rsa_key(public_key, policy, key);
      if (f == KeyForm::Unsupported) return CryptoResult::Unsupported;
      if (f == KeyForm::Malformed) return CryptoResult::Invalid;
      md = alg == algorithm::kRsaSha256   ? EVP_sha256()
           : alg == algorithm::kRsaSha512 ? EVP_sha512()
                                          : EVP_sha1();
      break;
    }
    case algorithm::kEcdsaP256:
    case algorithm::kEcdsaP384: {
      const bool p256 = alg == algorithm::kEcdsaP256;
      const std::size_t coord = p256 ? 32 : 48;
      key = ec_key(public_key, p256 ? "prime256v1" : "secp384r1", coord);
      if (!key) return CryptoResult::Invalid;
      auto d = ecdsa_der(signature, coord);
      if (!d) return CryptoResult::Invalid;
      der = std::move(*d);
      sig = der;
      md = p256 ? EVP_sha256() : EVP_sha384();
      break;
    }
    case algorithm::kEd25519:
    case algorithm::kEd448: {
      // RFC 8080 §3: the raw public key; pure EdDSA (no pre-hash).
      const bool ed25519 = alg == algorithm::kEd25519;
      if (public_key.size() != (ed25519 ? 32u : 57u)) return CryptoResult::Invalid;
      key.reset(EVP_PKEY_new_raw_public_key(ed25519 ? EVP_PKEY_ED25519 : EVP_PKEY_ED448, nullptr,
                                            public_key.data(), public_key.size()));
      if (!key) return CryptoResult::Invalid;
      break;
    }
    default:
      return CryptoResult::Unsupported;
  }
  return digest_verify(key.get(), md, data, sig) ? CryptoResult::Valid : CryptoResult::Invalid;
}

std::optional<std::vector<std::uint8_t>> ds_digest(const Name& owner,
                                                   std::span<const std::uint8_t> dnskey_rdata,
                                                   std::uint8_t digest_type) {
  const EVP_MD* md = digest_type == digest::kSha1     ? EVP_sha1()
                     : digest_type == digest::kSha256 ? EVP_sha256()
                     : digest_type == digest::kSha384 ? EVP_sha384()
                                                      : nullptr;
  if (md == nullptr) return std::nullopt;
  // RFC 4034 §5.1.4: digest = hash(canonical owner name | DNSKEY RDATA).
  const Name lower = owner.lowered();
  MdCtx ctx(EVP_MD_CTX_new());
  std::vector<std::uint8_t> out(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), lower.wire().data(), lower.wire().size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), dnskey_rdata.data(), dnskey_rdata.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1)
    return std::nullopt;
  out.resize(len);
  return out;
}

std::optional<std::array<std::uint8_t, 20>> nsec3_hash(const Name& name, std::uint8_t algorithm,
                                                       std::uint16_t iterations,
                                                       std::span<const std::uint8_t> salt,
                                                       Budget* budget) {
  if (algorithm != 1) return std::nullopt;
  if (budget != nullptr && !budget->take_hashes(unsigned{iterations} + 1u)) return std::nullopt;
  // RFC 5155 §5: IH(salt, x, 0) = H(x | salt); IH(salt, x, k) = H(IH(salt, x, k-1) | salt).
  const Name lower = name.lowered();
  std::array<std::uint8_t, 20> h{};
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx) return std::nullopt;
  const EVP_MD* md = EVP_sha1();
  unsigned len = 0;
  if (EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), lower.wire().data(), lower.wire().size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), salt.data(), salt.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), h.data(), &len) != 1)
    return std::nullopt;
  for (unsigned i = 0; i < iterations; ++i) {
    if (EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1 ||
        EVP_DigestUpdate(ctx.get(), h.data(), h.size()) != 1 ||
        EVP_DigestUpdate(ctx.get(), salt.data(), salt.size()) != 1 ||
        EVP_DigestFinal_ex(ctx.get(), h.data(), &len) != 1)
      return std::nullopt;
  }
  return h;
}

}  // namespace diode::resolver::dnssec
