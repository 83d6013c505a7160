#include "rdata.hpp"

#include "diode/resolver/name.hpp"

namespace diode::resolver::detail {

namespace {

constexpr Field kName{FieldKind::Name, 0};
constexpr Field kStr{FieldKind::CharString, 0};
constexpr Field kRest{FieldKind::Rest, 0};
constexpr Field fixed(std::uint8_t n) {
  return {FieldKind::Fixed, n};
}

constexpr RdataLayout make(std::initializer_list<Field> f, bool compress) {
  RdataLayout l;
  for (const Field& x : f) l.fields[l.count++] = x;
  l.compress_on_send = compress;
  return l;
}

// RFC 1035 §3.3 types (compressible), then RFC 3597 §4's "SHOULD
// decompress" list, then DNAME (RFC 6672 §2.5: receivers must cope with a
// compressed target sent by old servers), then fixed-size address types.
constexpr RdataLayout kOneName = make({kName}, true);
constexpr RdataLayout kSoa = make({kName, kName, fixed(20)}, true);
constexpr RdataLayout kTwoNames = make({kName, kName}, true);
constexpr RdataLayout kMx = make({fixed(2), kName}, true);
constexpr RdataLayout kRp = make({kName, kName}, false);
constexpr RdataLayout kPrefName = make({fixed(2), kName}, false);  // AFSDB, RT, KX
constexpr RdataLayout kSig = make({fixed(18), kName, kRest}, false);
constexpr RdataLayout kPx = make({fixed(2), kName, kName}, false);
constexpr RdataLayout kNxt = make({kName, kRest}, false);
constexpr RdataLayout kSrv = make({fixed(6), kName}, false);
constexpr RdataLayout kNaptr = make({fixed(4), kStr, kStr, kStr, kName}, false);
constexpr RdataLayout kDname = make({kName}, false);
constexpr RdataLayout kA = make({fixed(4)}, false);
constexpr RdataLayout kAaaa = make({fixed(16)}, false);

// Walks one RDATA. `pointers` says whether names may be compressed (RDATA
// inside a message) or not (RDATA held on its own).
WireError walk(std::span<const std::uint8_t> data, std::size_t offset, std::size_t length,
               const RdataLayout& l, bool pointers, std::vector<std::uint8_t>* out) {
  const std::size_t end = offset + length;
  std::size_t pos = offset;
  for (std::size_t i = 0; i < l.count; ++i) {
    const Field& f = l.fields[i];
    switch (f.kind) {
      case FieldKind::Name: {
        if (pos >= end) return WireError::BadRdata;
        Name n;
        std::size_t next = 0;
        const WireError e = pointers ? read_name(data, pos, &n, &next)
                                     : read_uncompressed_name(data, pos, &n, &next);
        if (e != WireError::Ok) return e;
        if (next > end) return WireError::BadRdata;
        if (out != nullptr) out->insert(out->end(), n.wire().begin(), n.wire().end());
        pos = next;
        break;
      }
      case FieldKind::Fixed:
        if (end - pos < f.size) return WireError::BadRdata;
        if (out != nullptr)
          out->insert(out->end(), data.begin() + static_cast<std::ptrdiff_t>(pos),
                      data.begin() + static_cast<std::ptrdiff_t>(pos + f.size));
        pos += f.size;
        break;
      case FieldKind::CharString: {
        if (pos >= end) return WireError::BadRdata;
        const std::size_t n = 1u + data[pos];
        if (end - pos < n) return WireError::BadRdata;
        if (out != nullptr)
          out->insert(out->end(), data.begin() + static_cast<std::ptrdiff_t>(pos),
                      data.begin() + static_cast<std::ptrdiff_t>(pos + n));
        pos += n;
        break;
      }
      case FieldKind::Rest:
        if (out != nullptr)
          out->insert(out->end(), data.begin() + static_cast<std::ptrdiff_t>(pos),
                      data.begin() + static_cast<std::ptrdiff_t>(end));
        pos = end;
        break;
    }
  }
  return pos == end ? WireError::Ok : WireError::BadRdata;
}

}  // namespace

const RdataLayout* layout_of(std::uint16_t type) {
  switch (type) {
    case rrtype::kNS:
    case rrtype::kMD:
    case rrtype::kMF:
    case rrtype::kCNAME:
    case rrtype::kMB:
    case rrtype::kMG:
    case rrtype::kMR:
    case rrtype::kPTR:
      return &kOneName;
    case rrtype::kSOA:
      return &kSoa;
    case rrtype::kMINFO:
      return &kTwoNames;
    case rrtype::kMX:
      return &kMx;
    case rrtype::kRP:
      return &kRp;
    case rrtype::kAFSDB:
    case rrtype::kRT:
    case rrtype::kKX:
      return &kPrefName;
    case rrtype::kSIG:
      return &kSig;
    case rrtype::kPX:
      return &kPx;
    case rrtype::kNXT:
      return &kNxt;
    case rrtype::kSRV:
      return &kSrv;
    case rrtype::kNAPTR:
      return &kNaptr;
    case rrtype::kDNAME:
      return &kDname;
    case rrtype::kA:
      return &kA;
    case rrtype::kAAAA:
      return &kAaaa;
    default:
      return nullptr;
  }
}

WireError expand_rdata(std::span<const std::uint8_t> msg, std::size_t offset, std::size_t length,
                       std::uint16_t type, std::vector<std::uint8_t>* out) {
  if (offset + length > msg.size()) return WireError::RdataOverrun;
  const RdataLayout* l = layout_of(type);
  if (l == nullptr) {
    if (out != nullptr)
      out->insert(out->end(), msg.begin() + static_cast<std::ptrdiff_t>(offset),
                  msg.begin() + static_cast<std::ptrdiff_t>(offset + length));
    return WireError::Ok;
  }
  return walk(msg, offset, length, *l, true, out);
}

WireError check_uncompressed_rdata(std::uint16_t type, std::span<const std::uint8_t> rdata) {
  const RdataLayout* l = layout_of(type);
  if (l == nullptr) return WireError::Ok;
  return walk(rdata, 0, rdata.size(), *l, false, nullptr);
}

}  // namespace diode::resolver::detail
