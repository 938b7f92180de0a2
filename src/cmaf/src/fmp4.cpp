#include "sf/cmaf/fmp4.h"

#include <algorithm>
#include <array>
#include <limits>
#include <string_view>

#include "box_writer.h"

namespace sf::cmaf {
namespace {

using media::Codec;
using media::MediaType;
using media::TrackConfig;

constexpr std::array<std::uint32_t, 9> kUnityMatrix = {0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000};
constexpr std::uint16_t kLanguageUnd = 0x55C4;  // ISO 639-2 "und", 5-bit packed (14496-12 §8.4.2.3)
constexpr std::uint32_t kMovieTimescale = 1000;

// 14496-12 §8.8.3.1 sample_flags: depends_on = 2 (sync), or depends_on = 1 and
// sample_is_non_sync_sample = 1.
constexpr std::uint32_t kSyncSampleFlags = 0x02000000;
constexpr std::uint32_t kNonSyncSampleFlags = 0x01010000;

constexpr std::uint32_t kTfhdDefaultBaseIsMoof = 0x020000;
constexpr std::uint32_t kTrunDataOffset = 0x000001;
constexpr std::uint32_t kTrunSampleDuration = 0x000100;
constexpr std::uint32_t kTrunSampleSize = 0x000200;
constexpr std::uint32_t kTrunSampleFlags = 0x000400;
constexpr std::uint32_t kTrunCompositionOffset = 0x000800;

// 14496-1 §7.2.6: descriptor tags in esds.
constexpr std::uint8_t kEsDescrTag = 0x03;
constexpr std::uint8_t kDecoderConfigDescrTag = 0x04;
constexpr std::uint8_t kDecSpecificInfoTag = 0x05;
constexpr std::uint8_t kSlConfigDescrTag = 0x06;
constexpr std::uint8_t kObjectTypeAudioIso14496_3 = 0x40;
constexpr std::uint8_t kStreamTypeAudio = 0x05;

std::uint16_t clamp_u16(std::uint32_t v) {
  return static_cast<std::uint16_t>(std::min<std::uint32_t>(v, 0xFFFF));
}

void matrix(BoxWriter& w) {
  for (std::uint32_t v : kUnityMatrix) w.u32(v);
}

void ftyp(BoxWriter& w) {
  const auto at = w.begin("ftyp");
  w.fourcc("iso6");
  w.u32(0);
  for (std::string_view brand : {"iso6", "cmfc", "dash"}) w.fourcc(brand);
  w.end(at);
}

void mvhd(BoxWriter& w, const TrackConfig& track) {
  const auto at = w.begin_full("mvhd", 0, 0);
  w.u32(0);  // creation_time
  w.u32(0);  // modification_time
  w.u32(kMovieTimescale);
  w.u32(0);           // duration: unknown (live), durations live in the fragments
  w.u32(0x00010000);  // rate 1.0
  w.u16(0x0100);      // volume 1.0
  w.zeros(2 + 8);
  matrix(w);
  w.zeros(6 * 4);  // pre_defined
  w.u32(track.track_id + 1);
  w.end(at);
}

void tkhd(BoxWriter& w, const TrackConfig& track) {
  // Flags 3: track_enabled | track_in_movie (CMAF §7.5.4).
  const auto at = w.begin_full("tkhd", 0, 3);
  w.u32(0);  // creation_time
  w.u32(0);  // modification_time
  w.u32(track.track_id);
  w.u32(0);  // reserved
  w.u32(0);  // duration
  w.zeros(8);
  w.u16(0);  // layer
  w.u16(0);  // alternate_group
  w.u16(track.type == MediaType::audio ? 0x0100 : 0);
  w.u16(0);
  matrix(w);
  const std::uint32_t width = track.video ? track.video->width : 0;
  const std::uint32_t height = track.video ? track.video->height : 0;
  w.u32(clamp_u16(width) << 16);  // 16.16 fixed point
  w.u32(clamp_u16(height) << 16);
  w.end(at);
}

void mdhd(BoxWriter& w, const TrackConfig& track) {
  const auto at = w.begin_full("mdhd", 0, 0);
  w.u32(0);
  w.u32(0);
  w.u32(track.timescale);
  w.u32(0);
  w.u16(kLanguageUnd);
  w.u16(0);
  w.end(at);
}

void hdlr(BoxWriter& w, const TrackConfig& track) {
  const bool video = track.type == MediaType::video;
  const auto at = w.begin_full("hdlr", 0, 0);
  w.u32(0);
  w.fourcc(video ? "vide" : "soun");
  w.zeros(12);
  const std::string_view name = video ? "VideoHandler" : "SoundHandler";
  w.bytes(as_bytes(name));
  w.u8(0);
  w.end(at);
}

void media_header(BoxWriter& w, const TrackConfig& track) {
  if (track.type == MediaType::video) {
    const auto at = w.begin_full("vmhd", 0, 1);
    w.zeros(2 + 3 * 2);  // graphicsmode, opcolor
    w.end(at);
  } else {
    const auto at = w.begin_full("smhd", 0, 0);
    w.zeros(2 + 2);  // balance, reserved
    w.end(at);
  }
}

void dinf(BoxWriter& w) {
  const auto at = w.begin("dinf");
  const auto dref = w.begin_full("dref", 0, 0);
  w.u32(1);
  const auto url = w.begin_full("url ", 0, 1);  // flag 1: media data in this file
  w.end(url);
  w.end(dref);
  w.end(at);
}

std::string_view sample_entry_type(Codec codec) {
  switch (codec) {
    case Codec::h264:
      return "avc1";
    case Codec::hevc:
      return "hvc1";
    case Codec::av1:
      return "av01";
    case Codec::aac:
      return "mp4a";
    default:
      return {};
  }
}

std::string_view config_box_type(Codec codec) {
  switch (codec) {
    case Codec::h264:
      return "avcC";
    case Codec::hevc:
      return "hvcC";
    case Codec::av1:
      return "av1C";
    default:
      return {};
  }
}

// 14496-12 §8.5.2.2 BitRateBox, when the track declares its peak rate (a transcoder's rung): what
// the origin reads back from pushed CMAF as the rendition's BANDWIDTH. avgBitrate is not known.
void btrt(BoxWriter& w, const TrackConfig& track) {
  if (track.bandwidth == 0) return;
  const auto at = w.begin("btrt");
  w.u32(0);  // bufferSizeDB
  w.u32(static_cast<std::uint32_t>(std::min<std::uint64_t>(track.bandwidth, 0xFFFFFFFFu)));
  w.u32(0);  // avgBitrate
  w.end(at);
}

// 14496-12 §12.1.3 VisualSampleEntry.
void visual_sample_entry(BoxWriter& w, const TrackConfig& track) {
  const auto at = w.begin(sample_entry_type(track.codec));
  w.zeros(6);
  w.u16(1);  // data_reference_index
  w.zeros(2 + 2 + 12);
  w.u16(clamp_u16(track.video->width));
  w.u16(clamp_u16(track.video->height));
  w.u32(0x00480000);  // 72 dpi
  w.u32(0x00480000);
  w.u32(0);
  w.u16(1);     // frame_count
  w.zeros(32);  // compressorname
  w.u16(0x0018);
  w.u16(0xFFFF);  // pre_defined = -1
  const auto config = w.begin(config_box_type(track.codec));
  w.bytes(track.record);
  w.end(config);
  btrt(w, track);
  w.end(at);
}

// 14496-1 §8.3.3 expandable size, always in the 4-byte form (what most muxers write).
void descriptor(BoxWriter& w, std::uint8_t tag, std::uint32_t size) {
  w.u8(tag);
  w.u8(static_cast<std::uint8_t>(0x80 | ((size >> 21) & 0x7F)));
  w.u8(static_cast<std::uint8_t>(0x80 | ((size >> 14) & 0x7F)));
  w.u8(static_cast<std::uint8_t>(0x80 | ((size >> 7) & 0x7F)));
  w.u8(static_cast<std::uint8_t>(size & 0x7F));
}

// 14496-14 §5.6 esds: ES_Descriptor{DecoderConfigDescriptor{DecoderSpecificInfo = ASC}, SLConfig}.
void esds(BoxWriter& w, const TrackConfig& track) {
  constexpr std::uint32_t kDescriptorHeader = 5;
  const auto asc_size = static_cast<std::uint32_t>(track.record.size());
  const std::uint32_t decoder_config_size = 13 + kDescriptorHeader + asc_size;
  const std::uint32_t sl_config_size = 1;
  const std::uint32_t es_size = 3 + kDescriptorHeader + decoder_config_size + kDescriptorHeader + sl_config_size;

  const auto at = w.begin_full("esds", 0, 0);
  descriptor(w, kEsDescrTag, es_size);
  w.u16(0);  // ES_ID: 0 inside MP4 files (14496-14 §3.1.2)
  w.u8(0);   // no dependsOn, URL or OCR stream
  descriptor(w, kDecoderConfigDescrTag, decoder_config_size);
  w.u8(kObjectTypeAudioIso14496_3);
  w.u8(kStreamTypeAudio << 2 | 1);  // upStream 0, reserved 1
  w.u24(0);                         // bufferSizeDB
  w.u32(0);                         // maxBitrate
  w.u32(0);                         // avgBitrate
  descriptor(w, kDecSpecificInfoTag, asc_size);
  w.bytes(track.record);
  descriptor(w, kSlConfigDescrTag, sl_config_size);
  w.u8(0x02);  // predefined: reserved for MP4 files
  w.end(at);
}

// 14496-12 §12.2.3 AudioSampleEntry.
void audio_sample_entry(BoxWriter& w, const TrackConfig& track) {
  const auto at = w.begin("mp4a");
  w.zeros(6);
  w.u16(1);  // data_reference_index
  w.zeros(8);
  // Channel configuration 0 means the layout is in-band (a PCE); stereo is the usual answer.
  w.u16(track.audio->channels != 0 ? track.audio->channels : 2);
  w.u16(16);  // samplesize
  w.zeros(2 + 2);
  // 16.16 fixed point; rates above 65535 Hz do not fit and are left to the timescale.
  const std::uint32_t rate = track.audio->sample_rate;
  w.u32(rate <= 0xFFFF ? rate << 16 : 0);
  esds(w, track);
  btrt(w, track);
  w.end(at);
}

void stbl(BoxWriter& w, const TrackConfig& track) {
  const auto at = w.begin("stbl");
  const auto stsd = w.begin_full("stsd", 0, 0);
  w.u32(1);
  if (track.type == MediaType::video) {
    visual_sample_entry(w, track);
  } else {
    audio_sample_entry(w, track);
  }
  w.end(stsd);
  // Fragmented file: the sample tables are empty, samples live in the fragments.
  for (std::string_view type : {"stts", "stsc", "stco"}) {
    const auto box = w.begin_full(type, 0, 0);
    w.u32(0);
    w.end(box);
  }
  const auto stsz = w.begin_full("stsz", 0, 0);
  w.u32(0);  // sample_size
  w.u32(0);  // sample_count
  w.end(stsz);
  w.end(at);
}

void trak(BoxWriter& w, const TrackConfig& track) {
  const auto at = w.begin("trak");
  tkhd(w, track);
  const auto mdia = w.begin("mdia");
  mdhd(w, track);
  hdlr(w, track);
  const auto minf = w.begin("minf");
  media_header(w, track);
  dinf(w);
  stbl(w, track);
  w.end(minf);
  w.end(mdia);
  w.end(at);
}

void mvex(BoxWriter& w, const TrackConfig& track) {
  const auto at = w.begin("mvex");
  const auto trex = w.begin_full("trex", 0, 0);
  w.u32(track.track_id);
  w.u32(1);  // default_sample_description_index
  w.u32(0);  // default_sample_duration
  w.u32(0);  // default_sample_size
  w.u32(0);  // default_sample_flags
  w.end(trex);
  w.end(at);
}

Result<void> check_packable(const TrackConfig& track) {
  const bool video_codec = track.codec == Codec::h264 || track.codec == Codec::hevc || track.codec == Codec::av1;
  if (track.type == MediaType::video ? !video_codec : track.codec != Codec::aac) return fail(errc::unsupported);
  if (track.record.empty()) return fail(errc::invalid_argument);
  if (track.type == MediaType::video ? !track.video : !track.audio) return fail(errc::invalid_argument);
  return {};
}

std::uint32_t sample_duration(std::int64_t dts, std::int64_t next) {
  // Out-of-order input would give a negative duration; a zero-length sample keeps the file valid.
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(next - dts, 0, std::numeric_limits<std::uint32_t>::max()));
}

std::int32_t composition_offset(const media::MediaFrame& f) {
  return static_cast<std::int32_t>(std::clamp<std::int64_t>(f.pts - f.dts, std::numeric_limits<std::int32_t>::min(),
                                                            std::numeric_limits<std::int32_t>::max()));
}

}  // namespace

Result<Bytes> write_init_segment(const TrackConfig& track) {
  if (auto ok = check_packable(track); !ok) return std::unexpected(ok.error());
  return build([&](BoxWriter& w) {
    ftyp(w);
    const auto moov = w.begin("moov");
    mvhd(w, track);
    trak(w, track);
    mvex(w, track);
    w.end(moov);
  });
}

std::size_t Chunk::size() const {
  std::size_t n = header.size();
  for (const Bytes& p : payload) n += p.size();
  return n;
}

Chunk write_chunk(const TrackConfig& track, std::uint32_t sequence_number, std::span<const media::MediaFrame> frames,
                  std::int64_t next_dts, bool with_styp) {
  std::uint64_t media_size = 0;
  for (const auto& f : frames) media_size += f.data.size();
  // 14496-12 §4.2: a box of 4 GiB or more needs the 64-bit largesize.
  const bool large_mdat = media_size + 8 > std::numeric_limits<std::uint32_t>::max();
  const std::uint32_t mdat_header_size = large_mdat ? 16 : 8;
  const std::int64_t base_dts = frames.empty() ? next_dts : frames.front().dts;

  Chunk chunk;
  chunk.header = build([&](BoxWriter& w) {
    if (with_styp) {
      // CMAF §7.3.2.2: a segment's first chunk may carry styp with the segment/fragment brands.
      const auto styp = w.begin("styp");
      w.fourcc("cmfs");
      w.u32(0);
      for (std::string_view brand : {"iso6", "cmfs", "cmff", "msdh"}) w.fourcc(brand);
      w.end(styp);
    }
    const auto moof = w.begin("moof");
    const auto mfhd = w.begin_full("mfhd", 0, 0);
    w.u32(sequence_number);
    w.end(mfhd);

    const auto traf = w.begin("traf");
    const auto tfhd = w.begin_full("tfhd", 0, kTfhdDefaultBaseIsMoof);
    w.u32(track.track_id);
    w.end(tfhd);
    const auto tfdt = w.begin_full("tfdt", 1, 0);
    w.u64(static_cast<std::uint64_t>(base_dts));
    w.end(tfdt);

    const auto trun = w.begin_full(
        "trun", 1, kTrunDataOffset | kTrunSampleDuration | kTrunSampleSize | kTrunSampleFlags | kTrunCompositionOffset);
    w.u32(static_cast<std::uint32_t>(frames.size()));
    const std::size_t data_offset_at = w.size();
    w.s32(0);  // patched once the moof size is known
    for (std::size_t i = 0; i < frames.size(); ++i) {
      const auto& f = frames[i];
      w.u32(sample_duration(f.dts, i + 1 < frames.size() ? frames[i + 1].dts : next_dts));
      w.u32(static_cast<std::uint32_t>(f.data.size()));
      w.u32(f.keyframe ? kSyncSampleFlags : kNonSyncSampleFlags);
      w.s32(composition_offset(f));
    }
    w.end(trun);
    w.end(traf);
    w.end(moof);
    // With default-base-is-moof, data_offset counts from the first byte of moof to the first
    // sample byte, i.e. past the mdat header.
    w.patch_u32(data_offset_at, static_cast<std::uint32_t>(w.size() - moof + mdat_header_size));

    if (large_mdat) {
      w.u32(1);
      w.fourcc("mdat");
      w.u64(media_size + 16);
    } else {
      w.u32(static_cast<std::uint32_t>(media_size + 8));
      w.fourcc("mdat");
    }
  });
  chunk.payload.reserve(frames.size());
  for (const auto& f : frames) chunk.payload.push_back(f.data);
  return chunk;
}

}  // namespace sf::cmaf
