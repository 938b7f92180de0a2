// libFuzzer target for the CMAF / fragmented-MP4 parser (sf/cmaf/demux.h).
// Each input is parsed as an init segment (and, if that works, as fragments against itself, as a
// whole fragmented file would be), then as fragments against a fixed real init with an H.264
// track 1 and an AAC track 2, so moof/traf/trun paths are reachable from any input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "sf/cmaf/demux.h"

namespace {

using sf::Bytes;
using sf::ByteView;

// ftyp + moov from ffmpeg 5.1: `-f lavfi -i testsrc2=size=64x64:rate=10 -f lavfi -i
// sine=sample_rate=48000 -c:v libx264 -c:a aac -f mp4 -movflags
// +frag_keyframe+empty_moov+default_base_moof` (avc1 64x64 track 1, mp4a 48 kHz track 2).
constexpr std::string_view kInitHex =
    "0000001c6674797069736f350000020069736f3569736f366d703431000004a86d6f6f760000006c6d766864000000000000000000000000"
    "000003e800000000000100000100000000000000000000000001000000000000000000000000000000010000000000000000000000000000"
    "4000000000000000000000000000000000000000000000000000000000000002000001f07472616b0000005c746b68640000000300000000"
    "0000000000000001000000000000000000000000000000000000000000000000000100000000000000000000000000000001000000000000"
    "00000000000000004000000000400000004000000000018c6d646961000000206d6468640000000000000000000000000000280000000000"
    "55c400000000002d68646c72000000000000000076696465000000000000000000000000566964656f48616e646c657200000001376d696e"
    "6600000014766d68640000000100000000000000000000002464696e660000001c6472656600000000000000010000000c75726c20000000"
    "01000000f77374626c000000ab7374736400000000000000010000009b617663310000000000000001000000000000000000000000000000"
    "000040004000480000004800000000000000010c4c617663206c696278323634000000000000000000000000000000000000000018ffff00"
    "000035617663430164000affe100186764000aace4109b011000000300100000030140f122512001000668ebe3cb22c0fdf8f80000000010"
    "7061737000000001000000010000001073747473000000000000000000000010737473630000000000000000000000147374737a00000000"
    "0000000000000000000000107374636f0000000000000000000001bf7472616b0000005c746b686400000003000000000000000000000002"
    "0000000000000000000000000000000000000001010000000001000000000000000000000000000000010000000000000000000000000000"
    "4000000000000000000000000000015b6d646961000000206d6468640000000000000000000000000000bb800000000055c400000000002d"
    "68646c720000000000000000736f756e000000000000000000000000536f756e6448616e646c657200000001066d696e6600000010736d68"
    "6400000000000000000000002464696e660000001c6472656600000000000000010000000c75726c2000000001000000ca7374626c000000"
    "7e7374736400000000000000010000006e6d703461000000000000000100000000000000000002001000000000bb80000000000036657364"
    "730000000003808080250002000480808017401500000000005dc000005dc00580808005118856e500068080800102000000146274727400"
    "00000000005dc000005dc00000001073747473000000000000000000000010737473630000000000000000000000147374737a0000000000"
    "00000000000000000000107374636f0000000000000000000000486d76657800000020747265780000000000000001000000010000000000"
    "0000000000000000000020747265780000000000000002000000010000000000000000000000000000003d75647461000000356d65746100"
    "0000000000002168646c7200000000000000006d6469726170706c00000000000000000000000008696c7374";

Bytes from_hex(std::string_view text) {
  std::vector<std::byte> out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    out.push_back(static_cast<std::byte>(std::strtoul(std::string(text.substr(i, 2)).c_str(), nullptr, 16)));
  }
  return Bytes::copy_of(out);
}

const sf::cmaf::InitSegment& fixed_init() {
  static const sf::cmaf::InitSegment init = [] {
    auto parsed = sf::cmaf::parse_init_segment(from_hex(kInitHex));
    if (!parsed || parsed->tracks.size() != 2) std::abort();
    return *parsed;
  }();
  return init;
}

unsigned touch(const Bytes& b) {
  unsigned sum = 0;
  for (std::byte x : b.view()) sum += std::to_integer<unsigned>(x);
  return sum;
}

bool inside(const Bytes& slice, const Bytes& input) {
  if (slice.empty()) return true;
  return slice.data() >= input.data() && slice.data() + slice.size() <= input.data() + input.size();
}

// Every slice must come from `input` (no copies, no escapes), and every frame from a known track.
void check_frames(const Bytes& input, const sf::cmaf::InitSegment& init) {
  auto frames = sf::cmaf::parse_fragments(input, init);
  if (!frames) return;
  if (frames->size() > sf::cmaf::kMaxFramesPerCall) std::abort();
  volatile unsigned sink = 0;
  for (const auto& f : *frames) {
    if (!inside(f.data, input)) std::abort();
    bool known = false;
    for (const auto& t : init.tracks) known = known || (t.track_id == f.track_id && t.codec == f.codec);
    if (!known) std::abort();
    sink = sink + touch(f.data);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // An exact-size copy, so ASan flags any read past the input.
  const Bytes input = Bytes::copy_of(ByteView(reinterpret_cast<const std::byte*>(data), size));

  if (auto init = sf::cmaf::parse_init_segment(input)) {
    if (init->tracks.empty()) std::abort();
    volatile unsigned sink = 0;
    for (const auto& t : init->tracks) {
      if (!inside(t.record, input)) std::abort();
      if (t.timescale == 0 || t.track_id == 0) std::abort();
      sink = sink + touch(t.record);
    }
    check_frames(input, *init);
  }
  check_frames(input, fixed_init());
  return 0;
}
