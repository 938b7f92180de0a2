// libFuzzer target for FLV tag bodies and codec configuration records.
// Input: byte 0 selects the path, the rest is one tag body (also given raw to each record parser).
//   bit 0: 0 video, 1 audio
//   bit 1: first feed a valid sequence header so frame paths are reachable
//   bits 2-3: which one (video: legacy AVC, ex hvc1, ex av01, ex avc1; audio: legacy AAC, ex mp4a,
//             ex Opus ID header, ex fLaC STREAMINFO)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "sf/media/codec_config.h"
#include "sf/media/flv.h"

namespace {

using sf::Bytes;
using sf::ByteView;

Bytes from_hex(std::string_view text) {
  std::vector<std::byte> out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    out.push_back(static_cast<std::byte>(std::strtoul(std::string(text.substr(i, 2)).c_str(), nullptr, 16)));
  }
  return Bytes::copy_of(out);
}

const Bytes& video_primer(int which) {
  static const Bytes primers[4] = {
      from_hex("17000000000164001fffe1001a6764001facd9405005bb0110000003001000000303c0f183196001000668ebe3cb22"
               "c0fdf8f800"),
      from_hex("906876633101016000000090000000000078f000fcfdf8f800000f03a00001001840010c01ffff0160000003009000"
               "00030000030078959809a10001002a420101016000000300900000030000030078a003c08010e596566924caf016"
               "8080000003008000000f04a2000100074401c172b46240"),
      from_hex("906176303181010c000a0b0000000cc4ff6700be0010"),
      from_hex("9061766331014d4028ffe1001a674d4028eca03c0113f2e022000003000200000300781e30632c0100"
               "0568ebe3cb20"),
  };
  return primers[which];
}

const Bytes& audio_primer(int which) {
  static const Bytes primers[4] = {
      from_hex("af00121056e500"),
      from_hex("906d7034611190"),
      from_hex("904f7075734f707573486561640102380180bb0000000000"),
      from_hex("90664c6143664c61430000002212001200000305000514"
               "0ac442f00000ac44b48e1dd0c193fdd40c05f288d60157a3"),
  };
  return primers[which];
}

// Touches every byte it is handed so ASan sees any slice that escapes its buffer.
struct Toucher : sf::media::FlvDemuxer::Output {
  const Bytes* body = nullptr;
  unsigned sum = 0;
  void touch(const Bytes& b) {
    for (std::byte x : b.view()) sum += std::to_integer<unsigned>(x);
  }
  void on_track(const sf::media::TrackConfig& track) override { touch(track.record); }
  void on_frame(sf::media::MediaFrame&& frame) override {
    touch(frame.data);
    const bool inside =
        frame.data.data() >= body->data() && frame.data.data() + frame.data.size() <= body->data() + body->size();
    if (!inside) std::abort();  // frames must slice the message they came from
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t selector = data[0];
  const Bytes body = Bytes::copy_of(ByteView(reinterpret_cast<const std::byte*>(data + 1), size - 1));
  const bool audio = (selector & 1) != 0;
  const int which = (selector >> 2) & 3;

  sf::media::FlvDemuxer demuxer;
  Toucher out;
  if (selector & 2) {
    const Bytes& primer = audio ? audio_primer(which) : video_primer(which);
    out.body = &primer;
    auto primed = audio ? demuxer.audio(0, primer, out) : demuxer.video(0, primer, out);
    if (!primed) std::abort();
  }
  out.body = &body;
  constexpr std::int64_t kTimestampMs = 0x7fffffff;
  for (int pass = 0; pass < 2; ++pass) {  // the second pass repeats: same header, or frames after it
    auto r = audio ? demuxer.audio(kTimestampMs, body, out) : demuxer.video(kTimestampMs, body, out);
    if (!r) break;
  }

  (void)sf::media::parse_avcc(body);
  (void)sf::media::parse_hvcc(body);
  (void)sf::media::parse_av1c(body);
  (void)sf::media::parse_audio_specific_config(body);
  (void)sf::media::parse_opus_head(body);
  (void)sf::media::parse_flac_streaminfo(body);
  (void)sf::media::parse_ac3_frame_header(body);
  return 0;
}
