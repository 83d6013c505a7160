// DNSSEC RDATA layouts (RFC 4034 §2-5, RFC 5155 §3), key tags, the
// canonical form of an RRset (RFC 4034 §6) and the RRSIG checks of
// RFC 4035 §5.3.

#include <algorithm>

#include "diode/resolver/dnssec.hpp"
#include "rdata.hpp"

namespace diode::resolver::dnssec {

using detail::get16;
using detail::get32;
using detail::put16;
using detail::put32;

std::string_view to_string(Security s) {
  switch (s) {
    case Security::Secure:
      return "secure";
    case Security::Insecure:
      return "insecure";
    case Security::Bogus:
      return "bogus";
    case Security::Indeterminate:
      return "indeterminate";
  }
  return "?";
}

bool Budget::take_signature() {
  if (sigs_ == 0) return false;
  if (parent_ != nullptr && !parent_->take_signature()) return false;
  --sigs_;
  ++sigs_used_;
  return true;
}

bool Budget::take_hashes(unsigned n) {
  if (hashes_ < n) return false;
  if (parent_ != nullptr && !parent_->take_hashes(n)) return false;
  hashes_ -= n;
  return true;
}

void Budget::refill(unsigned signature_checks, unsigned hash_operations) {
  sigs_ += signature_checks;
  hashes_ += hash_operations;
}

// ---------------------------------------------------------------------------

std::optional<DnskeyView> parse_dnskey(std::span<const std::uint8_t> rdata) {
  if (rdata.size() < 5) return std::nullopt;  // flags, protocol, algorithm, a key octet
  DnskeyView v;
  v.flags = get16(rdata.data());
  v.protocol = rdata[2];
  v.algorithm = rdata[3];
  v.public_key = rdata.subspan(4);
  v.rdata = rdata;
  return v;
}

std::optional<RrsigView> parse_rrsig(std::span<const std::uint8_t> rdata) {
  if (rdata.size() < 19) return std::nullopt;
  RrsigView v;
  const std::uint8_t* p = rdata.data();
  v.type_covered = get16(p);
  v.algorithm = p[2];
  v.labels = p[3];
  v.original_ttl = get32(p + 4);
  v.expiration = get32(p + 8);
  v.inception = get32(p + 12);
  v.key_tag = get16(p + 16);
  std::size_t next = 0;
  if (read_uncompressed_name(rdata, 18, &v.signer, &next) != WireError::Ok) return std::nullopt;
  v.signed_fields = rdata.first(next);
  v.signature = rdata.subspan(next);
  if (v.signature.empty()) return std::nullopt;
  return v;
}

std::optional<DsView> parse_ds(std::span<const std::uint8_t> rdata) {
  if (rdata.size() < 5) return std::nullopt;
  DsView v;
  v.key_tag = get16(rdata.data());
  v.algorithm = rdata[2];
  v.digest_type = rdata[3];
  v.digest = rdata.subspan(4);
  return v;
}

std::optional<TypeBitmap> TypeBitmap::parse(std::span<const std::uint8_t> data) {
  // RFC 4034 §4.1.2: (window, length 1-32, bitmap) blocks, windows increasing.
  std::size_t pos = 0;
  int last_window = -1;
  while (pos < data.size()) {
    if (data.size() - pos < 2) return std::nullopt;
    const int window = data[pos];
    const std::size_t len = data[pos + 1];
    if (window <= last_window || len == 0 || len > 32 || data.size() - pos - 2 < len)
      return std::nullopt;
    last_window = window;
    pos += 2 + len;
  }
  TypeBitmap b;
  b.data_ = data;
  return b;
}

bool TypeBitmap::has(std::uint16_t type) const {
  const std::size_t window = type >> 8;
  const std::size_t octet = (type & 0xffu) >> 3;
  const unsigned bit = 7u - (type & 7u);
  std::size_t pos = 0;
  while (pos + 2 <= data_.size()) {
    const std::size_t w = data_[pos];
    const std::size_t len = data_[pos + 1];
    if (w == window) return octet < len && ((unsigned{data_[pos + 2 + octet]} >> bit) & 1u) != 0;
    if (w > window) return false;
    pos += 2 + len;
  }
  return false;
}

std::optional<NsecView> parse_nsec(std::span<const std::uint8_t> rdata) {
  NsecView v;
  std::size_t next = 0;
  if (rdata.empty() || read_uncompressed_name(rdata, 0, &v.next, &next) != WireError::Ok)
    return std::nullopt;
  auto types = TypeBitmap::parse(rdata.subspan(next));
  if (!types) return std::nullopt;
  v.types = *types;
  return v;
}

std::optional<Nsec3View> parse_nsec3(std::span<const std::uint8_t> rdata) {
  if (rdata.size() < 5) return std::nullopt;
  Nsec3View v;
  v.hash_algorithm = rdata[0];
  v.flags = rdata[1];
  v.iterations = get16(rdata.data() + 2);
  const std::size_t salt_len = rdata[4];
  std::size_t pos = 5;
  if (rdata.size() - pos < salt_len + 1) return std::nullopt;
  v.salt = rdata.subspan(pos, salt_len);
  pos += salt_len;
  const std::size_t hash_len = rdata[pos++];
  if (hash_len == 0 || rdata.size() - pos < hash_len) return std::nullopt;
  v.next_hashed = rdata.subspan(pos, hash_len);
  pos += hash_len;
  auto types = TypeBitmap::parse(rdata.subspan(pos));
  if (!types) return std::nullopt;
  v.types = *types;
  return v;
}

// ---------------------------------------------------------------------------

std::uint16_t key_tag(std::span<const std::uint8_t> rdata) {
  // RFC 4034 Appendix B: the one's-complement-like sum of the RDATA as
  // 16-bit words. Algorithm 1 (RSA/MD5) is not supported, so its special
  // rule is not needed: its keys are never used.
  std::uint32_t ac = 0;
  for (std::size_t i = 0; i < rdata.size(); ++i)
    ac += (i & 1u) != 0 ? std::uint32_t{rdata[i]} : std::uint32_t{rdata[i]} << 8;
  ac += (ac >> 16) & 0xffffu;
  return static_cast<std::uint16_t>(ac & 0xffffu);
}

namespace {

constexpr char kBase32Hex[] = "0123456789abcdefghijklmnopqrstuv";

// The RDATA of `type` in canonical form (RFC 4034 §6.2 item 3, with RFC
// 6840 §5.1: the names of the listed types lowercased; NSEC's are not).
// The types whose RDATA holds names are exactly the layouts of rdata.cpp.
bool canonical_rdata(std::uint16_t type, std::span<const std::uint8_t> rdata,
                     std::vector<std::uint8_t>& out) {
  const detail::RdataLayout* l = detail::layout_of(type);
  if (l == nullptr) {
    out.insert(out.end(), rdata.begin(), rdata.end());
    return true;
  }
  std::size_t pos = 0;
  for (std::size_t i = 0; i < l->count; ++i) {
    const detail::Field& f = l->fields[i];
    std::size_t take = 0;
    switch (f.kind) {
      case detail::FieldKind::Name: {
        Name n;
        std::size_t next = 0;
        if (read_uncompressed_name(rdata, pos, &n, &next) != WireError::Ok) return false;
        const Name low = n.lowered();
        out.insert(out.end(), low.wire().begin(), low.wire().end());
        pos = next;
        continue;
      }
      case detail::FieldKind::Fixed:
        take = f.size;
        break;
      case detail::FieldKind::CharString:
        if (pos >= rdata.size()) return false;
        take = 1u + rdata[pos];
        break;
      case detail::FieldKind::Rest:
        take = rdata.size() - pos;
        break;
    }
    if (rdata.size() - pos < take) return false;
    out.insert(out.end(), rdata.begin() + static_cast<std::ptrdiff_t>(pos),
               rdata.begin() + static_cast<std::ptrdiff_t>(pos + take));
    pos += take;
  }
  return pos == rdata.size();
}

}  // namespace

std::string base32hex_encode(std::span<const std::uint8_t> data) {
  std::string out;
  unsigned buffer = 0;
  unsigned bits = 0;
  for (std::uint8_t b : data) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(kBase32Hex[(buffer >> bits) & 31u]);
    }
    buffer &= (1u << bits) - 1u;
  }
  if (bits > 0) out.push_back(kBase32Hex[(buffer << (5 - bits)) & 31u]);
  return out;
}

std::optional<std::vector<std::uint8_t>> base32hex_decode(std::string_view text) {
  std::vector<std::uint8_t> out;
  unsigned buffer = 0;
  unsigned bits = 0;
  for (char c : text) {
    unsigned v = 0;
    if (c >= '0' && c <= '9')
      v = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'v')
      v = static_cast<unsigned>(c - 'a') + 10u;
    else if (c >= 'A' && c <= 'V')
      v = static_cast<unsigned>(c - 'A') + 10u;
    else
      return std::nullopt;
    buffer = (buffer << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>((buffer >> bits) & 0xffu));
      buffer &= (1u << bits) - 1u;
    }
  }
  if (buffer != 0) return std::nullopt;  // non-zero padding bits: not canonical
  return out;
}

std::optional<std::vector<std::uint8_t>> signed_data(const RRset& rrset, const RrsigView& sig) {
  // RFC 4035 §5.3.2: a labels field below the owner's count means the
  // RRset was expanded from the wildcard "*." + the rightmost labels.
  if (sig.labels > rrset.owner.label_count()) return std::nullopt;
  Name owner = rrset.owner.lowered();
  if (sig.labels < owner.label_count()) {
    owner = owner.suffix(sig.labels);
    const std::uint8_t star = '*';
    if (!owner.prepend_label(std::span<const std::uint8_t>(&star, 1))) return std::nullopt;
  }
  // Canonical RDATAs, sorted and without duplicates (RFC 4034 §6.3).
  std::vector<std::vector<std::uint8_t>> rdatas;
  rdatas.reserve(rrset.size());
  for (auto rd : rrset) {
    std::vector<std::uint8_t> c;
    if (!canonical_rdata(rrset.type, rd, c) || c.size() > 0xffff) return std::nullopt;
    rdatas.push_back(std::move(c));
  }
  std::sort(rdatas.begin(), rdatas.end());
  rdatas.erase(std::unique(rdatas.begin(), rdatas.end()), rdatas.end());

  std::vector<std::uint8_t> out(sig.signed_fields.begin(), sig.signed_fields.end());
  // RFC 6840 §5.1: the signer name in the RRSIG RDATA is lowercased too.
  {
    const Name signer = sig.signer.lowered();
    std::copy(signer.wire().begin(), signer.wire().end(), out.begin() + 18);
  }
  std::uint8_t fixed[10];
  put16(fixed, rrset.type);
  put16(fixed + 2, rrset.rclass);
  put32(fixed + 4, sig.original_ttl);
  for (const auto& rd : rdatas) {
    out.insert(out.end(), owner.wire().begin(), owner.wire().end());
    put16(fixed + 8, static_cast<std::uint16_t>(rd.size()));
    out.insert(out.end(), fixed, fixed + 10);
    out.insert(out.end(), rd.begin(), rd.end());
  }
  return out;
}

bool serial_less(std::uint32_t a, std::uint32_t b) {
  // RFC 1982 §3.2 for SERIAL_BITS = 32.
  return a != b && static_cast<std::uint32_t>(b - a) < 0x80000000u;
}

namespace {

// Where `now` stands against the RRSIG's validity period (RFC 4035 §5.3.1),
// with an allowance for skewed clocks on both ends.
SigStatus check_time(const RrsigView& sig, const Clock& clock) {
  const std::uint32_t now = static_cast<std::uint32_t>(clock.now & 0xffffffffu);
  if (serial_less(sig.expiration, sig.inception)) return SigStatus::Expired;
  const std::uint32_t period = sig.expiration - sig.inception;
  const std::uint32_t skew = std::clamp(period / 10u, clock.min_skew, clock.max_skew);
  if (serial_less(sig.expiration + skew, now)) return SigStatus::Expired;
  if (serial_less(now, sig.inception - skew)) return SigStatus::NotYetValid;
  return SigStatus::Valid;
}

// Ranks failures so the most telling one is reported when several
// signatures fail for different reasons.
int rank(SigStatus s) {
  switch (s) {
    case SigStatus::Valid:
      return 100;
    case SigStatus::BudgetExhausted:
      return 90;
    case SigStatus::BadSignature:
      return 80;
    case SigStatus::Expired:
      return 70;
    case SigStatus::NotYetValid:
      return 60;
    case SigStatus::BadLabels:
      return 50;
    case SigStatus::NoMatchingKey:
      return 40;
    case SigStatus::Unsupported:
      return 30;
    case SigStatus::NoSignatures:
      return 0;
  }
  return 0;
}

}  // namespace

RrsetCheck check_rrset(const RRset& rrset, std::span<const std::span<const std::uint8_t>> rrsigs,
                       const Name& signer, const RRset& dnskeys, const Clock& clock,
                       const AlgorithmPolicy& policy, Budget& budget) {
  RrsetCheck result;
  const bool self_signed_keys = rrset.type == rrtype::kDNSKEY && rrset.owner == signer;
  for (auto rd : rrsigs) {
    auto sig = parse_rrsig(rd);
    if (!sig || sig->type_covered != rrset.type || !(sig->signer == signer)) continue;
    // RFC 4035 §5.3.1: the signer is the zone holding the RRset.
    if (!rrset.owner.is_subdomain_of(sig->signer)) continue;
    auto worse = [&](SigStatus s) {
      if (rank(s) > rank(result.status)) result.status = s;
    };
    if (sig->labels > rrset.owner.label_count()) {
      worse(SigStatus::BadLabels);
      continue;
    }
    if (!algorithm_supported(sig->algorithm, policy)) {
      worse(SigStatus::Unsupported);
      continue;
    }
    const SigStatus t = check_time(*sig, clock);
    if (t != SigStatus::Valid) {
      worse(t);
      continue;
    }
    std::optional<std::vector<std::uint8_t>> data;
    bool any_key = false;
    for (auto kd : dnskeys) {
      auto key = parse_dnskey(kd);
      if (!key || key->algorithm != sig->algorithm || key->protocol != 3 || !key->zone_key())
        continue;
      if (key->revoked() && !self_signed_keys) continue;
      if (key_tag(kd) != sig->key_tag) continue;
      any_key = true;
      if (!data) {
        data = signed_data(rrset, *sig);
        if (!data) break;
      }
      // KeyTrap: every verification attempt, successful or not, is paid for.
      if (!budget.take_signature()) {
        result.status = SigStatus::BudgetExhausted;
        return result;
      }
      const CryptoResult c =
          verify_signature(sig->algorithm, key->public_key, *data, sig->signature, policy);
      if (c == CryptoResult::Valid) {
        result.status = SigStatus::Valid;
        result.key_tag = sig->key_tag;
        std::uint32_t ttl = std::min(rrset.ttl, sig->original_ttl);
        const std::uint32_t now = static_cast<std::uint32_t>(clock.now & 0xffffffffu);
        if (serial_less(now, sig->expiration)) ttl = std::min(ttl, sig->expiration - now);
        result.ttl = ttl;
        // The wildcard owner itself ("*.w.example", labels 2) is no expansion.
        const auto first =
            rrset.owner.is_root() ? std::span<const std::uint8_t>() : *rrset.owner.labels().begin();
        const bool is_wildcard = first.size() == 1 && first[0] == '*';
        if (sig->labels + (is_wildcard ? 1u : 0u) < rrset.owner.label_count())
          result.wildcard_parent = rrset.owner.suffix(sig->labels);
        return result;
      }
      worse(c == CryptoResult::Unsupported ? SigStatus::Unsupported : SigStatus::BadSignature);
    }
    if (!any_key) worse(SigStatus::NoMatchingKey);
  }
  return result;
}

Ede ede_for(SigStatus s) {
  switch (s) {
    case SigStatus::Valid:
      return Ede::None;
    case SigStatus::NoSignatures:
      return Ede::RrsigsMissing;
    case SigStatus::Expired:
      return Ede::SignatureExpired;
    case SigStatus::NotYetValid:
      return Ede::SignatureNotYetValid;
    case SigStatus::NoMatchingKey:
      return Ede::DnskeyMissing;
    case SigStatus::Unsupported:
      return Ede::UnsupportedDnskeyAlgorithm;
    case SigStatus::BadSignature:
    case SigStatus::BadLabels:
      return Ede::DnssecBogus;
    case SigStatus::BudgetExhausted:
      return Ede::DnssecIndeterminate;
  }
  return Ede::DnssecBogus;
}

}  // namespace diode::resolver::dnssec
