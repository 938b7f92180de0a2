#include "sf/cmaf/demux.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "sf/core/byte_reader.h"
#include "sf/media/codec_config.h"

namespace sf::cmaf {
namespace {

using media::Codec;
using media::MediaFrame;
using media::MediaType;
using media::TrackConfig;

constexpr std::uint32_t fourcc(const char (&s)[5]) {
  return std::uint32_t{static_cast<unsigned char>(s[0])} << 24 | std::uint32_t{static_cast<unsigned char>(s[1])} << 16 |
         std::uint32_t{static_cast<unsigned char>(s[2])} << 8 | std::uint32_t{static_cast<unsigned char>(s[3])};
}

// 14496-12 §8.8.7 tfhd flags.
constexpr std::uint32_t kTfhdBaseDataOffset = 0x000001;
constexpr std::uint32_t kTfhdSampleDescriptionIndex = 0x000002;
constexpr std::uint32_t kTfhdDefaultDuration = 0x000008;
constexpr std::uint32_t kTfhdDefaultSize = 0x000010;
constexpr std::uint32_t kTfhdDefaultFlags = 0x000020;
constexpr std::uint32_t kTfhdDefaultBaseIsMoof = 0x020000;
// 14496-12 §8.8.8 trun flags.
constexpr std::uint32_t kTrunDataOffset = 0x000001;
constexpr std::uint32_t kTrunFirstSampleFlags = 0x000004;
constexpr std::uint32_t kTrunDuration = 0x000100;
constexpr std::uint32_t kTrunSize = 0x000200;
constexpr std::uint32_t kTrunFlags = 0x000400;
constexpr std::uint32_t kTrunCompositionOffset = 0x000800;
// 14496-12 §8.8.3.1 sample_flags: sample_is_non_sync_sample.
constexpr std::uint32_t kSampleIsNonSync = 0x00010000;

// 14496-1 §7.2.6 descriptor tags, §7.2.6.6 objectTypeIndication.
constexpr std::uint8_t kEsDescrTag = 0x03;
constexpr std::uint8_t kDecoderConfigDescrTag = 0x04;
constexpr std::uint8_t kDecSpecificInfoTag = 0x05;
constexpr std::uint8_t kObjectTypeMpeg4Audio = 0x40;
constexpr std::uint8_t kObjectTypeMpeg2AacMain = 0x66;  // 0x66..0x68: MPEG-2 AAC Main, LC, SSR
constexpr std::uint8_t kObjectTypeMpeg2AacSsr = 0x68;

// Supported tracks one init segment may describe; real ones have a handful. Keeps the per-traf
// track lookup and the duplicate check cheap on hostile input.
constexpr std::size_t kMaxTracks = 256;

// 14496-12 §12.1.3 VisualSampleEntry and §12.2.3 AudioSampleEntry: fixed fields before children.
constexpr std::size_t kVisualSampleEntrySize = 78;
constexpr std::size_t kVisualWidthOffset = 24;
constexpr std::size_t kAudioSampleEntrySize = 28;
constexpr std::size_t kAudioVersionOffset = 8;
// QuickTime sound description versions 1 and 2 (ffmpeg's mov muxer, some encoders) add fields.
constexpr std::size_t kAudioV1Extra = 16;
constexpr std::size_t kAudioV2Extra = 36;

struct Box {
  std::uint32_t type = 0;
  std::size_t start = 0;  // offsets into the whole input: first header byte,
  std::size_t body = 0;   // first byte after the header,
  std::size_t end = 0;    // one past the last byte
};

// Iterates the boxes between `begin` and `end` of `all` (14496-12 §4.2). Sizes below the header,
// past the container or (below top level) 0 are malformed. Boxes are at least 8 bytes, so a
// container of n bytes yields at most n / 8 boxes.
class BoxIterator {
 public:
  BoxIterator(ByteView all, std::size_t begin, std::size_t end, bool top_level)
      : all_(all), pos_(begin), end_(end), top_level_(top_level) {}
  BoxIterator(ByteView all, const Box& container, std::size_t skip = 0)
      : BoxIterator(all, std::min(container.body + skip, container.end), container.end, false) {}

  Result<std::optional<Box>> next() {
    if (pos_ == end_) return std::optional<Box>{};
    ByteReader r(all_.subspan(pos_, end_ - pos_));
    auto size32 = r.u32();
    auto type = r.u32();
    if (!size32 || !type) return fail(errc::malformed);
    std::uint64_t size = *size32;
    std::size_t header = 8;
    if (size == 1) {
      auto large = r.u64();
      if (!large) return fail(errc::malformed);
      size = *large;
      header = 16;
    } else if (size == 0) {
      // §4.2: size 0 means "to the end of the file", only meaningful for a top-level box.
      if (!top_level_) return fail(errc::malformed);
      size = end_ - pos_;
    }
    if (*type == fourcc("uuid")) header += 16;
    if (size < header || size > end_ - pos_) return fail(errc::malformed);
    Box box{*type, pos_, pos_ + header, pos_ + static_cast<std::size_t>(size)};
    pos_ = box.end;
    return box;
  }

 private:
  ByteView all_;
  std::size_t pos_;
  std::size_t end_;
  bool top_level_;
};

// A ByteReader whose failure sticks: reads past the end return 0 and set failed(). Callers check
// failed() before they size, index or allocate anything with what they read.
class FieldReader {
 public:
  explicit FieldReader(ByteView in) : r_(in) {}
  std::uint8_t u8() { return get(r_.u8()); }
  std::uint16_t u16() { return get(r_.u16()); }
  std::uint32_t u24() { return get(r_.u24()); }
  std::uint32_t u32() { return get(r_.u32()); }
  std::uint64_t u64() { return get(r_.u64()); }
  void skip(std::size_t n) {
    if (!r_.skip(n)) failed_ = true;
  }
  bool failed() const { return failed_; }
  std::size_t remaining() const { return failed_ ? 0 : r_.remaining(); }
  std::size_t position() const { return r_.position(); }

 private:
  template <class T>
  T get(Result<T> v) {
    if (!v) {
      failed_ = true;
      return 0;
    }
    return *v;
  }
  ByteReader r_;
  bool failed_ = false;
};

ByteView body_of(ByteView all, const Box& b) {
  return all.subspan(b.body, b.end - b.body);
}

// Finds the first child of `container` with `type`.
Result<std::optional<Box>> find_child(ByteView all, const Box& container, std::uint32_t type) {
  BoxIterator it(all, container);
  for (;;) {
    auto b = it.next();
    if (!b) return std::unexpected(b.error());
    if (!*b || (*b)->type == type) return *b;
  }
}

Result<Box> require_child(ByteView all, const Box& container, std::uint32_t type) {
  auto b = find_child(all, container, type);
  if (!b) return std::unexpected(b.error());
  if (!*b) return fail(errc::malformed);
  return **b;
}

struct FullBoxHeader {
  std::uint8_t version = 0;
  std::uint32_t flags = 0;
};

FullBoxHeader full_box_header(FieldReader& r) {
  const std::uint32_t word = r.u32();
  return {static_cast<std::uint8_t>(word >> 24), word & 0xFFFFFF};
}

// ---- init segment ----

struct ParsedTrack {
  TrackConfig config;
  std::uint32_t media_timescale = 0;
  // The edit list (§8.6.6): the leading empty edits' total duration (movie timescale) and the
  // media_time of the first edit that plays media (media timescale); none: no edit list.
  std::uint64_t empty_edits = 0;
  std::optional<std::int64_t> first_media_time;
};

// Most edits read from one elst; ordinary files have one or two.
constexpr std::uint32_t kMaxEdits = 64;

// edts/elst of a trak, if any, into `out`. Entries are 8 or 16 bytes (version 0 or 1), so the
// count is checked against the box size before reading.
Result<void> parse_edit_list(ByteView all, const Box& trak, ParsedTrack& out) {
  auto edts = find_child(all, trak, fourcc("edts"));
  if (!edts) return std::unexpected(edts.error());
  if (!*edts) return {};
  auto elst = find_child(all, **edts, fourcc("elst"));
  if (!elst) return std::unexpected(elst.error());
  if (!*elst) return {};
  FieldReader r(body_of(all, **elst));
  const auto h = full_box_header(r);
  const std::uint32_t count = r.u32();
  const std::size_t entry_size = h.version == 1 ? 20 : 12;
  if (r.failed() || h.version > 1 || count > r.remaining() / entry_size) return fail(errc::malformed);
  for (std::uint32_t i = 0; i < std::min(count, kMaxEdits); ++i) {
    const std::uint64_t duration = h.version == 1 ? r.u64() : r.u32();
    const std::int64_t media_time =
        h.version == 1 ? static_cast<std::int64_t>(r.u64()) : static_cast<std::int32_t>(r.u32());
    r.skip(4);  // media_rate_integer, media_rate_fraction
    if (r.failed()) return fail(errc::malformed);
    if (media_time == -1) {
      out.empty_edits += duration;
      continue;
    }
    if (media_time < 0) return fail(errc::malformed);
    out.first_media_time = media_time;
    break;
  }
  return {};
}

// 14496-1 §8.3.3 expandable size: up to four 7-bit groups.
std::optional<std::size_t> descriptor_size(FieldReader& r) {
  std::size_t size = 0;
  for (int i = 0; i < 4; ++i) {
    const std::uint8_t b = r.u8();
    if (r.failed()) return std::nullopt;
    size = size << 7 | (b & 0x7F);
    if (!(b & 0x80)) return size;
  }
  return std::nullopt;
}

// Descriptors inside `in`: returns the body of the first one with `tag`. Iterative and bounded:
// each descriptor takes at least two bytes.
Result<std::optional<ByteView>> find_descriptor(ByteView in, std::uint8_t tag) {
  FieldReader r(in);
  while (r.remaining() > 0) {
    const std::uint8_t t = r.u8();
    const auto size = descriptor_size(r);
    if (!size || *size > r.remaining()) return fail(errc::malformed);
    const ByteView body = in.subspan(r.position(), *size);
    if (t == tag) return body;
    r.skip(*size);
  }
  return std::optional<ByteView>{};
}

// 14496-14 §5.6 esds → ES_Descriptor → DecoderConfigDescriptor → DecoderSpecificInfo.
// nullopt: an objectTypeIndication that is not AAC (MP3, ...), which the caller skips.
Result<std::optional<ByteView>> find_audio_specific_config(ByteView esds_body) {
  if (esds_body.size() < 4) return fail(errc::malformed);  // FullBox version + flags
  auto es = find_descriptor(esds_body.subspan(4), kEsDescrTag);
  if (!es) return std::unexpected(es.error());
  if (!*es) return fail(errc::malformed);
  // 14496-1 §7.2.6.5 ES_Descriptor: ES_ID, flags, then optional fields the flags announce.
  FieldReader r(**es);
  r.skip(2);
  const std::uint8_t flags = r.u8();
  if (flags & 0x80) r.skip(2);       // dependsOn_ES_ID
  if (flags & 0x40) r.skip(r.u8());  // URL
  if (flags & 0x20) r.skip(2);       // OCR_ES_Id
  if (r.failed()) return fail(errc::malformed);
  auto dcd = find_descriptor((*es)->subspan(r.position()), kDecoderConfigDescrTag);
  if (!dcd) return std::unexpected(dcd.error());
  if (!*dcd) return fail(errc::malformed);
  // §7.2.6.6: objectTypeIndication, streamType, bufferSizeDB, maxBitrate, avgBitrate.
  constexpr std::size_t kDecoderConfigFixed = 13;
  if ((*dcd)->size() < kDecoderConfigFixed) return fail(errc::malformed);
  const auto oti = std::to_integer<std::uint8_t>((**dcd)[0]);
  const bool aac = oti == kObjectTypeMpeg4Audio || (oti >= kObjectTypeMpeg2AacMain && oti <= kObjectTypeMpeg2AacSsr);
  if (!aac) return std::optional<ByteView>{};
  auto dsi = find_descriptor((*dcd)->subspan(kDecoderConfigFixed), kDecSpecificInfoTag);
  if (!dsi) return std::unexpected(dsi.error());
  if (!*dsi) return fail(errc::malformed);  // AAC cannot be decoded without its AudioSpecificConfig
  return *dsi;
}

Bytes share_view(const Bytes& data, ByteView v) {
  return data.share(static_cast<std::size_t>(v.data() - data.data()), v.size());
}

// 14496-12 §8.5.2.2 BitRateBox {bufferSizeDB, maxBitrate, avgBitrate}: the declared peak rate
// (TrackConfig::bandwidth), 0 when absent or short.
std::uint64_t btrt_max_bitrate(ByteView all, const Box& btrt) {
  const ByteView body = body_of(all, btrt);
  if (body.size() < 12) return 0;
  FieldReader r(body.subspan(4));
  return r.u32();
}

// Fills `track` from a supported sample entry; false for entries we do not take.
Result<bool> parse_visual_entry(const Bytes& data, const Box& entry, TrackConfig& track) {
  const ByteView all = data.view();
  std::uint32_t config_type = 0;
  Codec codec = Codec::unknown;
  switch (entry.type) {
    case fourcc("avc1"):
    case fourcc("avc3"):
      codec = Codec::h264;
      config_type = fourcc("avcC");
      break;
    case fourcc("hvc1"):
    case fourcc("hev1"):
      codec = Codec::hevc;
      config_type = fourcc("hvcC");
      break;
    case fourcc("av01"):
      codec = Codec::av1;
      config_type = fourcc("av1C");
      break;
    default:
      return false;
  }
  const ByteView fixed = body_of(all, entry);
  if (fixed.size() < kVisualSampleEntrySize) return fail(errc::malformed);
  FieldReader dims(fixed.subspan(kVisualWidthOffset));
  const std::uint16_t width = dims.u16();
  const std::uint16_t height = dims.u16();

  BoxIterator it(all, entry, kVisualSampleEntrySize);
  std::optional<Box> config;
  for (;;) {
    auto b = it.next();
    if (!b) return std::unexpected(b.error());
    if (!*b) break;
    if ((*b)->type == config_type && !config) config = *b;
    if ((*b)->type == fourcc("btrt")) track.bandwidth = btrt_max_bitrate(all, **b);
  }
  if (!config) return fail(errc::malformed);
  const ByteView record = body_of(all, *config);
  auto cfg = codec == Codec::h264   ? media::parse_avcc(record)
             : codec == Codec::hevc ? media::parse_hvcc(record)
                                    : media::parse_av1c(record);
  if (!cfg) return std::unexpected(cfg.error());
  // avc3/hev1 may carry their parameter sets in-band only; the sample entry still has the size.
  if (cfg->width == 0 || cfg->height == 0) {
    cfg->width = width;
    cfg->height = height;
  }
  track.type = MediaType::video;
  track.codec = codec;
  track.timescale = media::kVideoTimescale;
  track.record = share_view(data, record);
  track.video = std::move(*cfg);
  return true;
}

Result<bool> parse_audio_entry(const Bytes& data, const Box& entry, TrackConfig& track) {
  if (entry.type != fourcc("mp4a")) return false;
  const ByteView all = data.view();
  const ByteView fixed = body_of(all, entry);
  if (fixed.size() < kAudioSampleEntrySize) return fail(errc::malformed);
  FieldReader v(fixed.subspan(kAudioVersionOffset));
  const std::uint16_t version = v.u16();
  const std::size_t skip = kAudioSampleEntrySize + (version == 1 ? kAudioV1Extra : version == 2 ? kAudioV2Extra : 0);
  if (fixed.size() < skip) return fail(errc::malformed);

  auto esds = find_child(all, Box{entry.type, entry.start, entry.body + skip, entry.end}, fourcc("esds"));
  if (!esds) return std::unexpected(esds.error());
  if (!*esds) {
    // QuickTime files nest it: mp4a{wave{frma, mp4a, esds}}.
    auto wave = find_child(all, Box{entry.type, entry.start, entry.body + skip, entry.end}, fourcc("wave"));
    if (!wave) return std::unexpected(wave.error());
    if (!*wave) return fail(errc::malformed);
    esds = find_child(all, **wave, fourcc("esds"));
    if (!esds) return std::unexpected(esds.error());
    if (!*esds) return fail(errc::malformed);
  }
  auto rate = find_child(all, Box{entry.type, entry.start, entry.body + skip, entry.end}, fourcc("btrt"));
  if (!rate) return std::unexpected(rate.error());
  if (*rate) track.bandwidth = btrt_max_bitrate(all, **rate);
  auto asc = find_audio_specific_config(body_of(all, **esds));
  if (!asc) return std::unexpected(asc.error());
  if (!*asc) return false;
  auto cfg = media::parse_audio_specific_config(**asc);
  if (!cfg) return std::unexpected(cfg.error());
  track.type = MediaType::audio;
  track.codec = cfg->codec;
  track.timescale = cfg->sample_rate;
  track.record = share_view(data, **asc);
  track.audio = std::move(*cfg);
  return true;
}

// nullopt: a trak without a supported sample entry (or handler), which the caller skips.
Result<std::optional<ParsedTrack>> parse_trak(const Bytes& data, const Box& trak) {
  const ByteView all = data.view();
  ParsedTrack out;
  out.config.version = 1;

  auto tkhd = require_child(all, trak, fourcc("tkhd"));
  if (!tkhd) return std::unexpected(tkhd.error());
  {
    // 14496-12 §8.3.2: creation and modification times are 64-bit in version 1.
    FieldReader r(body_of(all, *tkhd));
    const auto h = full_box_header(r);
    r.skip(h.version == 1 ? 16 : 8);
    out.config.track_id = r.u32();
    if (r.failed() || out.config.track_id == 0) return fail(errc::malformed);
  }
  if (auto edits = parse_edit_list(all, trak, out); !edits) return std::unexpected(edits.error());
  auto mdia = require_child(all, trak, fourcc("mdia"));
  if (!mdia) return std::unexpected(mdia.error());
  auto mdhd = require_child(all, *mdia, fourcc("mdhd"));
  if (!mdhd) return std::unexpected(mdhd.error());
  {
    // §8.4.2: version 1 has 64-bit creation and modification times.
    FieldReader r(body_of(all, *mdhd));
    const auto h = full_box_header(r);
    r.skip(h.version == 1 ? 16 : 8);
    out.media_timescale = r.u32();
    if (r.failed() || out.media_timescale == 0) return fail(errc::malformed);
  }
  auto hdlr = require_child(all, *mdia, fourcc("hdlr"));
  if (!hdlr) return std::unexpected(hdlr.error());
  std::uint32_t handler = 0;
  {
    FieldReader r(body_of(all, *hdlr));
    full_box_header(r);
    r.skip(4);  // pre_defined
    handler = r.u32();
    if (r.failed()) return fail(errc::malformed);
  }
  if (handler != fourcc("vide") && handler != fourcc("soun")) return std::optional<ParsedTrack>{};

  auto minf = require_child(all, *mdia, fourcc("minf"));
  if (!minf) return std::unexpected(minf.error());
  auto stbl = require_child(all, *minf, fourcc("stbl"));
  if (!stbl) return std::unexpected(stbl.error());
  auto stsd = require_child(all, *stbl, fourcc("stsd"));
  if (!stsd) return std::unexpected(stsd.error());

  // §8.5.2: FullBox header, entry_count, then the sample entries. Fragments may pick another
  // entry with sample_description_index; we describe the track by its first supported one.
  FieldReader r(body_of(all, *stsd));
  full_box_header(r);
  const std::uint32_t entry_count = r.u32();
  if (r.failed()) return fail(errc::malformed);
  BoxIterator it(all, *stsd, 8);
  for (std::uint32_t i = 0; i < entry_count; ++i) {
    auto entry = it.next();
    if (!entry) return std::unexpected(entry.error());
    if (!*entry) break;
    auto taken = handler == fourcc("vide") ? parse_visual_entry(data, **entry, out.config)
                                           : parse_audio_entry(data, **entry, out.config);
    if (!taken) return std::unexpected(taken.error());
    if (*taken) return out;
  }
  return std::optional<ParsedTrack>{};
}

struct Trex {
  std::uint32_t track_id = 0;
  std::uint32_t sample_duration = 0;
  std::uint32_t sample_size = 0;
  std::uint32_t sample_flags = 0;
};

// 14496-12 §8.8.3 trex: track_ID, default_sample_description_index, duration, size, flags.
Result<std::vector<Trex>> parse_mvex(ByteView all, const Box& mvex) {
  std::vector<Trex> out;
  BoxIterator it(all, mvex);
  for (;;) {
    auto b = it.next();
    if (!b) return std::unexpected(b.error());
    if (!*b) return out;
    if ((*b)->type != fourcc("trex")) continue;
    FieldReader r(body_of(all, **b));
    full_box_header(r);
    Trex t;
    t.track_id = r.u32();
    r.skip(4);
    t.sample_duration = r.u32();
    t.sample_size = r.u32();
    t.sample_flags = r.u32();
    if (r.failed()) return fail(errc::malformed);
    out.push_back(t);
  }
}

// ---- fragments ----

struct TrackState {
  const TrackConfig* config = nullptr;
  std::uint32_t media_timescale = 0;
  std::uint32_t default_duration = 0;  // trex
  std::uint32_t default_size = 0;
  std::uint32_t default_flags = 0;
  std::int64_t next_dts = 0;  // where the previous traf of this track ended, media timescale
};

// Rounds v * to / from to the nearest integer (halves away from zero); nullopt on overflow.
std::optional<std::int64_t> rescale(std::int64_t v, std::uint32_t from, std::uint32_t to) {
  if (from == to) return v;
  if (from == 0) return std::nullopt;
  const bool negative = v < 0;
  const std::uint64_t magnitude = negative ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
  const std::uint64_t q = magnitude / from;
  const std::uint64_t r = magnitude % from;
  std::uint64_t whole = 0;
  if (__builtin_mul_overflow(q, std::uint64_t{to}, &whole)) return std::nullopt;
  // r < from < 2^32 and to < 2^32: r * to + from / 2 fits in 64 bits.
  const std::uint64_t part = (r * to + from / 2) / from;
  std::uint64_t total = 0;
  if (__builtin_add_overflow(whole, part, &total)) return std::nullopt;
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (total > kMax) return std::nullopt;
  return negative ? -static_cast<std::int64_t>(total) : static_cast<std::int64_t>(total);
}

struct Tfhd {
  std::uint32_t flags = 0;
  std::uint32_t track_id = 0;
  std::uint64_t base_data_offset = 0;
  std::uint32_t default_duration = 0;
  std::uint32_t default_size = 0;
  std::uint32_t default_flags = 0;
};

Result<Tfhd> parse_tfhd(ByteView body) {
  FieldReader r(body);
  Tfhd t;
  t.flags = full_box_header(r).flags;
  t.track_id = r.u32();
  if (t.flags & kTfhdBaseDataOffset) t.base_data_offset = r.u64();
  if (t.flags & kTfhdSampleDescriptionIndex) r.skip(4);
  if (t.flags & kTfhdDefaultDuration) t.default_duration = r.u32();
  if (t.flags & kTfhdDefaultSize) t.default_size = r.u32();
  if (t.flags & kTfhdDefaultFlags) t.default_flags = r.u32();
  if (r.failed()) return fail(errc::malformed);
  return t;
}

// 14496-12 §8.8.12 tfdt: baseMediaDecodeTime, 64-bit in version 1.
Result<std::int64_t> parse_tfdt(ByteView body) {
  FieldReader r(body);
  const auto h = full_box_header(r);
  const std::uint64_t t = h.version == 1 ? r.u64() : r.u32();
  if (r.failed() || t > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return fail(errc::malformed);
  }
  return static_cast<std::int64_t>(t);
}

class MoofParser {
 public:
  MoofParser(const Bytes& data, std::vector<TrackState>& tracks, std::vector<MediaFrame>& frames)
      : data_(data), all_(data.view()), tracks_(tracks), frames_(frames) {}

  // One moof and the mdat after it (14496-12 §8.8.4).
  Result<void> parse(const Box& moof, const Box& mdat) {
    mdat_begin_ = mdat.body;
    mdat_end_ = mdat.end;
    // §8.8.7.1: without base-data-offset or default-base-is-moof, the first traf's base is the
    // moof's first byte and each later traf's base is where the previous traf's data ended.
    std::uint64_t previous_end = moof.start;
    BoxIterator it(all_, moof);
    for (;;) {
      auto b = it.next();
      if (!b) return std::unexpected(b.error());
      if (!*b) return {};
      if ((*b)->type != fourcc("traf")) continue;
      auto end = parse_traf(moof, **b, previous_end);
      if (!end) return std::unexpected(end.error());
      previous_end = *end;
    }
  }

 private:
  // Returns where this traf's sample data ended.
  Result<std::uint64_t> parse_traf(const Box& moof, const Box& traf, std::uint64_t previous_end) {
    auto tfhd_box = require_child(all_, traf, fourcc("tfhd"));
    if (!tfhd_box) return std::unexpected(tfhd_box.error());
    auto tfhd = parse_tfhd(body_of(all_, *tfhd_box));
    if (!tfhd) return std::unexpected(tfhd.error());
    auto track =
        std::ranges::find_if(tracks_, [&](const TrackState& t) { return t.config->track_id == tfhd->track_id; });
    if (track == tracks_.end()) return previous_end;  // a track the init did not describe (metadata, ...)

    std::uint64_t base = previous_end;
    if (tfhd->flags & kTfhdBaseDataOffset) {
      base = tfhd->base_data_offset;
    } else if (tfhd->flags & kTfhdDefaultBaseIsMoof) {
      base = moof.start;
    }
    // Every sample must lie in the mdat; a base outside the input can only point elsewhere.
    if (base > all_.size()) return fail(errc::malformed);

    auto tfdt_box = find_child(all_, traf, fourcc("tfdt"));
    if (!tfdt_box) return std::unexpected(tfdt_box.error());
    std::int64_t dts = track->next_dts;
    if (*tfdt_box) {
      auto t = parse_tfdt(body_of(all_, **tfdt_box));
      if (!t) return std::unexpected(t.error());
      dts = *t;
    }

    Defaults d;
    d.duration = tfhd->flags & kTfhdDefaultDuration ? tfhd->default_duration : track->default_duration;
    d.size = tfhd->flags & kTfhdDefaultSize ? tfhd->default_size : track->default_size;
    d.flags = tfhd->flags & kTfhdDefaultFlags ? tfhd->default_flags : track->default_flags;

    // §8.8.8.1: a trun without data_offset continues where the previous trun's data ended.
    std::uint64_t cursor = base;
    BoxIterator it(all_, traf);
    for (;;) {
      auto b = it.next();
      if (!b) return std::unexpected(b.error());
      if (!*b) break;
      if ((*b)->type != fourcc("trun")) continue;
      auto ok = parse_trun(body_of(all_, **b), *track, d, base, cursor, dts);
      if (!ok) return std::unexpected(ok.error());
    }
    track->next_dts = dts;
    return cursor;
  }

  struct Defaults {
    std::uint32_t duration = 0;
    std::uint32_t size = 0;
    std::uint32_t flags = 0;
  };

  Result<void> parse_trun(ByteView body, const TrackState& track, const Defaults& d, std::uint64_t base,
                          std::uint64_t& cursor, std::int64_t& dts) {
    FieldReader r(body);
    const auto h = full_box_header(r);
    const std::uint32_t count = r.u32();
    std::int32_t data_offset = 0;
    if (h.flags & kTrunDataOffset) data_offset = static_cast<std::int32_t>(r.u32());
    const bool has_first_flags = (h.flags & kTrunFirstSampleFlags) != 0;
    const std::uint32_t first_flags = has_first_flags ? r.u32() : 0;
    if (r.failed()) return fail(errc::malformed);

    const std::size_t per_sample = 4 * ((h.flags & kTrunDuration ? 1 : 0) + (h.flags & kTrunSize ? 1 : 0) +
                                        (h.flags & kTrunFlags ? 1 : 0) + (h.flags & kTrunCompositionOffset ? 1 : 0));
    if (per_sample != 0 && count > r.remaining() / per_sample) return fail(errc::malformed);
    if (count > kMaxFramesPerCall - frames_.size()) return fail(errc::limit_exceeded);
    if (h.flags & kTrunDataOffset) {
      // base <= input size, so this cannot overflow.
      const std::int64_t start = static_cast<std::int64_t>(base) + data_offset;
      if (start < 0) return fail(errc::malformed);
      cursor = static_cast<std::uint64_t>(start);
    }
    const std::size_t needed = frames_.size() + count;
    if (needed > frames_.capacity()) frames_.reserve(std::max(needed, 2 * frames_.capacity()));

    const TrackConfig& config = *track.config;
    const bool video = config.type == MediaType::video;
    for (std::uint32_t i = 0; i < count; ++i) {
      const std::uint32_t duration = h.flags & kTrunDuration ? r.u32() : d.duration;
      const std::uint32_t size = h.flags & kTrunSize ? r.u32() : d.size;
      std::uint32_t flags = i == 0 && has_first_flags ? first_flags : d.flags;
      if (h.flags & kTrunFlags) flags = r.u32();  // §8.8.8.1: per-sample flags win over first_sample_flags
      std::int64_t composition = 0;
      if (h.flags & kTrunCompositionOffset) {
        const std::uint32_t raw = r.u32();
        // Version 0 offsets are unsigned, version 1 signed.
        composition = h.version == 0 ? std::int64_t{raw} : std::int64_t{static_cast<std::int32_t>(raw)};
      }
      if (r.failed()) return fail(errc::malformed);  // not reached: count was checked against the body
      if (cursor < mdat_begin_ || cursor > mdat_end_ || size > mdat_end_ - cursor) return fail(errc::malformed);

      std::int64_t pts = 0;
      if (__builtin_add_overflow(dts, composition, &pts)) return fail(errc::malformed);
      const auto out_dts = rescale(dts, track.media_timescale, config.timescale);
      const auto out_pts = rescale(pts, track.media_timescale, config.timescale);
      if (!out_dts || !out_pts) return fail(errc::malformed);

      MediaFrame& f = frames_.emplace_back();
      f.track_id = config.track_id;
      f.type = config.type;
      f.codec = config.codec;
      f.dts = *out_dts;
      f.pts = *out_pts;
      f.keyframe = !video || (flags & kSampleIsNonSync) == 0;
      f.config_version = config.version;
      f.data = data_.share(static_cast<std::size_t>(cursor), size);

      cursor += size;
      if (__builtin_add_overflow(dts, std::int64_t{duration}, &dts)) return fail(errc::malformed);
    }
    return {};
  }

  const Bytes& data_;
  ByteView all_;
  std::vector<TrackState>& tracks_;
  std::vector<MediaFrame>& frames_;
  std::size_t mdat_begin_ = 0;
  std::size_t mdat_end_ = 0;
};

// What the edit list adds to media times, in `timescale` ticks: empty edits delay the media,
// the first media edit's media_time is where presentation starts. Offsets beyond
// kMaxPresentationOffset either way are not honoured (0): they are not priming or reordering
// delay, and a timeline moved that far would only confuse the packager.
std::int64_t presentation_offset(const ParsedTrack& t, std::uint32_t movie_timescale, std::uint32_t timescale) {
  if (!t.first_media_time && t.empty_edits == 0) return 0;
  double seconds = -double(t.first_media_time.value_or(0)) / t.media_timescale;
  if (t.empty_edits > 0) {
    if (movie_timescale == 0) return 0;
    seconds += double(t.empty_edits) / movie_timescale;
  }
  if (std::abs(seconds) > kMaxPresentationOffset.count() / 1000.0) return 0;
  return std::llround(seconds * timescale);
}

}  // namespace

Result<InitSegment> parse_init_segment(const Bytes& data) {
  const ByteView all = data.view();
  BoxIterator top(all, 0, all.size(), true);
  std::optional<Box> moov;
  for (;;) {
    auto b = top.next();
    if (!b) return std::unexpected(b.error());
    if (!*b) break;
    if ((*b)->type == fourcc("moov")) {
      moov = *b;
      break;
    }
  }
  if (!moov) return fail(errc::malformed);

  InitSegment init;
  std::vector<ParsedTrack> parsed;
  std::vector<Trex> trex;
  std::uint32_t movie_timescale = 0;
  BoxIterator it(all, *moov);
  for (;;) {
    auto b = it.next();
    if (!b) return std::unexpected(b.error());
    if (!*b) break;
    if ((*b)->type == fourcc("trak")) {
      auto track = parse_trak(data, **b);
      if (!track) return std::unexpected(track.error());
      if (!*track) continue;
      const std::uint32_t id = (*track)->config.track_id;
      if (std::ranges::any_of(init.tracks, [id](const TrackConfig& t) { return t.track_id == id; })) {
        return fail(errc::malformed);  // §8.3.2: track_IDs are unique
      }
      if (init.tracks.size() == kMaxTracks) return fail(errc::limit_exceeded);
      init.tracks.push_back((*track)->config);
      parsed.push_back(std::move(**track));
    } else if ((*b)->type == fourcc("mvhd")) {
      // §8.2.2: version 1 has 64-bit creation and modification times.
      FieldReader r(body_of(all, **b));
      const auto h = full_box_header(r);
      r.skip(h.version == 1 ? 16 : 8);
      movie_timescale = r.u32();
      if (r.failed()) return fail(errc::malformed);
    } else if ((*b)->type == fourcc("mvex")) {
      auto t = parse_mvex(all, **b);
      if (!t) return std::unexpected(t.error());
      trex.insert(trex.end(), t->begin(), t->end());
    }
  }
  if (init.tracks.empty()) return fail(errc::unsupported);

  for (std::size_t i = 0; i < init.tracks.size(); ++i) {
    InitSegment::FragmentDefaults d;
    d.track_id = init.tracks[i].track_id;
    d.media_timescale = parsed[i].media_timescale;
    init.presentation_offsets.push_back(presentation_offset(parsed[i], movie_timescale, init.tracks[i].timescale));
    auto t = std::ranges::find_if(trex, [&](const Trex& x) { return x.track_id == d.track_id; });
    if (t != trex.end()) {
      d.sample_duration = t->sample_duration;
      d.sample_size = t->sample_size;
      d.sample_flags = t->sample_flags;
    }
    init.defaults_.push_back(d);
  }
  return init;
}

Result<std::vector<MediaFrame>> parse_fragments(const Bytes& data, const InitSegment& init) {
  std::vector<TrackState> tracks;
  tracks.reserve(init.tracks.size());
  for (const TrackConfig& config : init.tracks) {
    TrackState s;
    s.config = &config;
    s.media_timescale = config.timescale;
    auto d = std::ranges::find_if(init.defaults_, [&](const auto& x) { return x.track_id == config.track_id; });
    if (d != init.defaults_.end()) {
      s.media_timescale = d->media_timescale;
      s.default_duration = d->sample_duration;
      s.default_size = d->sample_size;
      s.default_flags = d->sample_flags;
    }
    if (s.media_timescale == 0 || config.timescale == 0) return fail(errc::invalid_argument);
    tracks.push_back(s);
  }

  std::vector<MediaFrame> frames;
  MoofParser parser(data, tracks, frames);
  const ByteView all = data.view();
  BoxIterator top(all, 0, all.size(), true);
  std::optional<Box> moof;
  for (;;) {
    auto b = top.next();
    if (!b) return std::unexpected(b.error());
    if (!*b) break;
    if ((*b)->type == fourcc("moof")) {
      if (moof) return fail(errc::malformed);  // CMAF §7.3.2: every moof has its own mdat
      moof = *b;
    } else if ((*b)->type == fourcc("mdat") && moof) {
      if (auto ok = parser.parse(*moof, **b); !ok) return std::unexpected(ok.error());
      moof.reset();
    }
  }
  if (moof) return fail(errc::truncated);
  return frames;
}

}  // namespace sf::cmaf
