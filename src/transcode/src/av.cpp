#include "av.h"

extern "C" {
#include <libavutil/error.h>
}

#include <cstring>

namespace sf::transcode {

FramePtr make_frame() {
  return FramePtr(av_frame_alloc(), AvFrameFree{});
}

std::string av_error(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof buf);
  return buf;
}

bool is_annexb(ByteView in) {
  auto b = [&](std::size_t i) { return std::to_integer<unsigned>(in[i]); };
  return (in.size() >= 3 && b(0) == 0 && b(1) == 0 && b(2) == 1) ||
         (in.size() >= 4 && b(0) == 0 && b(1) == 0 && b(2) == 0 && b(3) == 1);
}

std::vector<ByteView> split_annexb(ByteView in) {
  std::vector<ByteView> out;
  auto b = [&](std::size_t i) { return std::to_integer<unsigned>(in[i]); };
  const auto* base = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t start = std::size_t(-1);
  // A start code ends in a 1 after two zeros: memchr finds the candidate 1s (rare in coded data,
  // where emulation prevention keeps 00 00 01 out of NAL units) instead of a byte-by-byte scan.
  std::size_t j = 2;
  while (j < in.size()) {
    const void* hit = std::memchr(base + j, 1, in.size() - j);
    if (!hit) break;
    j = static_cast<std::size_t>(static_cast<const unsigned char*>(hit) - base);
    if (b(j - 1) != 0 || b(j - 2) != 0) {
      ++j;
      continue;
    }
    if (start != std::size_t(-1)) {
      std::size_t end = j - 2;
      while (end > start && b(end - 1) == 0) --end;  // trailing zeros belong to the next start code
      if (end > start) out.push_back(in.subspan(start, end - start));
    }
    start = j + 1;
    j = start + 2;
  }
  if (start != std::size_t(-1) && start < in.size()) out.push_back(in.subspan(start));
  return out;
}

Bytes annexb_to_length_prefixed(ByteView in) {
  if (!is_annexb(in)) return Bytes::copy_of(in);  // already length-prefixed
  auto nals = split_annexb(in);
  std::size_t total = 0;
  for (auto n : nals) total += 4 + n.size();
  MutableBytes out(total);
  std::size_t at = 0;
  for (auto n : nals) {
    unsigned type = std::to_integer<unsigned>(n[0]) & 0x1f;
    if (type == 7 || type == 8 || type == 9) continue;  // SPS, PPS (in avcC), AUD
    auto len = static_cast<std::uint32_t>(n.size());
    std::byte* p = out.data() + at;
    p[0] = std::byte(len >> 24);
    p[1] = std::byte(len >> 16);
    p[2] = std::byte(len >> 8);
    p[3] = std::byte(len);
    std::memcpy(p + 4, n.data(), n.size());
    at += 4 + n.size();
  }
  auto frozen = Bytes::freeze(std::move(out));
  return frozen.share(0, at);
}

Result<Bytes> make_avcc(ByteView extradata) {
  if (!extradata.empty() && std::to_integer<unsigned>(extradata[0]) == 1) return Bytes::copy_of(extradata);
  ByteView sps, pps;
  for (auto n : split_annexb(extradata)) {
    unsigned type = std::to_integer<unsigned>(n[0]) & 0x1f;
    if (type == 7 && sps.empty()) sps = n;
    if (type == 8 && pps.empty()) pps = n;
  }
  if (sps.size() < 4 || pps.empty() || sps.size() > 0xffff || pps.size() > 0xffff)
    return std::unexpected(make_error_code(errc::invalid_argument));
  std::string r;
  r.push_back(1);
  r.push_back(static_cast<char>(sps[1]));  // profile_idc
  r.push_back(static_cast<char>(sps[2]));  // constraint flags
  r.push_back(static_cast<char>(sps[3]));  // level_idc
  r.push_back(static_cast<char>(0xff));    // lengthSizeMinusOne = 3
  r.push_back(static_cast<char>(0xe1));    // one SPS
  r.push_back(static_cast<char>(sps.size() >> 8));
  r.push_back(static_cast<char>(sps.size() & 0xff));
  r.append(reinterpret_cast<const char*>(sps.data()), sps.size());
  r.push_back(1);  // one PPS
  r.push_back(static_cast<char>(pps.size() >> 8));
  r.push_back(static_cast<char>(pps.size() & 0xff));
  r.append(reinterpret_cast<const char*>(pps.data()), pps.size());
  return Bytes::adopt(std::move(r));
}

}  // namespace sf::transcode
