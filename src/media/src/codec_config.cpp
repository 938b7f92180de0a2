#include "sf/media/codec_config.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <string_view>

#include "bit_reader.h"
#include "sf/core/byte_reader.h"

namespace sf::media {
namespace {

// Largest picture side we accept from a parameter set; above any level limit, and small enough
// that width/height arithmetic cannot overflow.
constexpr std::uint32_t kMaxPictureSide = 65536;

struct Dimensions {
  std::uint32_t width = 0;
  std::uint32_t height = 0;
};

std::uint8_t byte_at(ByteView v, std::size_t i) {
  return std::to_integer<std::uint8_t>(v[i]);
}

// Cropped size; a crop that eats the whole picture is malformed.
Result<Dimensions> cropped(std::uint64_t width, std::uint64_t height, std::uint64_t crop_x, std::uint64_t crop_y) {
  if (width == 0 || height == 0 || width > kMaxPictureSide || height > kMaxPictureSide) {
    return fail(errc::malformed);
  }
  if (crop_x >= width || crop_y >= height) return fail(errc::malformed);
  return Dimensions{static_cast<std::uint32_t>(width - crop_x), static_cast<std::uint32_t>(height - crop_y)};
}

// H.264 7.3.2.1.1.1 scaling_list(): only the deltas need walking.
void skip_avc_scaling_list(BitReader& br, int size) {
  std::int64_t last_scale = 8;
  std::int64_t next_scale = 8;
  for (int j = 0; j < size && next_scale != 0; ++j) {
    const std::int64_t delta = br.se();
    next_scale = ((last_scale + delta) % 256 + 256) % 256;
    if (next_scale != 0) last_scale = next_scale;
    if (br.error()) return;
  }
}

// H.264 7.3.2.1.1: profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices.
bool avc_has_chroma_info(std::uint8_t profile_idc) {
  constexpr std::array<std::uint8_t, 13> kProfiles = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135};
  return std::ranges::find(kProfiles, profile_idc) != kProfiles.end();
}

// H.264 7.3.2.1.1 seq_parameter_set_data(), up to frame cropping.
Result<Dimensions> parse_avc_sps(ByteView nal) {
  if (nal.empty()) return fail(errc::truncated);
  if ((byte_at(nal, 0) & 0x1f) != 7) return fail(errc::malformed);
  const auto rbsp = nal_to_rbsp(nal.subspan(1));
  BitReader br(rbsp);
  const auto profile_idc = static_cast<std::uint8_t>(br.bits(8));
  br.skip(16);  // constraint_set flags, level_idc
  br.ue();      // seq_parameter_set_id
  std::uint32_t chroma_format_idc = 1;
  bool separate_colour_plane = false;
  if (avc_has_chroma_info(profile_idc)) {
    chroma_format_idc = br.ue();
    if (chroma_format_idc > 3) return fail(errc::malformed);
    if (chroma_format_idc == 3) separate_colour_plane = br.flag();
    br.ue();          // bit_depth_luma_minus8
    br.ue();          // bit_depth_chroma_minus8
    br.skip(1);       // qpprime_y_zero_transform_bypass_flag
    if (br.flag()) {  // seq_scaling_matrix_present_flag
      const int lists = chroma_format_idc != 3 ? 8 : 12;
      for (int i = 0; i < lists; ++i) {
        if (br.flag()) skip_avc_scaling_list(br, i < 6 ? 16 : 64);
      }
    }
  }
  br.ue();  // log2_max_frame_num_minus4
  const std::uint32_t pic_order_cnt_type = br.ue();
  if (pic_order_cnt_type == 0) {
    br.ue();  // log2_max_pic_order_cnt_lsb_minus4
  } else if (pic_order_cnt_type == 1) {
    br.skip(1);  // delta_pic_order_always_zero_flag
    br.se();     // offset_for_non_ref_pic
    br.se();     // offset_for_top_to_bottom_field
    const std::uint32_t cycle = br.ue();
    if (cycle > 255) return fail(errc::malformed);
    for (std::uint32_t i = 0; i < cycle; ++i) br.se();
  } else if (pic_order_cnt_type > 2) {
    return fail(errc::malformed);
  }
  br.ue();     // max_num_ref_frames
  br.skip(1);  // gaps_in_frame_num_value_allowed_flag
  const std::uint64_t width_mbs = std::uint64_t{br.ue()} + 1;
  const std::uint64_t height_map_units = std::uint64_t{br.ue()} + 1;
  const bool frame_mbs_only = br.flag();
  if (!frame_mbs_only) br.skip(1);  // mb_adaptive_frame_field_flag
  br.skip(1);                       // direct_8x8_inference_flag
  std::uint64_t crop_left = 0, crop_right = 0, crop_top = 0, crop_bottom = 0;
  if (br.flag()) {  // frame_cropping_flag
    crop_left = br.ue();
    crop_right = br.ue();
    crop_top = br.ue();
    crop_bottom = br.ue();
  }
  if (auto ec = br.error()) return std::unexpected(ec);

  // H.264 7.4.2.1.1: crop units depend on ChromaArrayType and field coding.
  const std::uint64_t field_factor = frame_mbs_only ? 1 : 2;
  const std::uint32_t chroma_array_type = separate_colour_plane ? 0 : chroma_format_idc;
  std::uint64_t crop_unit_x = 1;
  std::uint64_t crop_unit_y = field_factor;
  if (chroma_array_type != 0) {
    const std::uint64_t sub_width_c = chroma_format_idc == 3 ? 1 : 2;
    const std::uint64_t sub_height_c = chroma_format_idc == 1 ? 2 : 1;
    crop_unit_x = sub_width_c;
    crop_unit_y = sub_height_c * field_factor;
  }
  const std::uint64_t limit_mbs = kMaxPictureSide / 16;
  if (width_mbs > limit_mbs || height_map_units * field_factor > limit_mbs) return fail(errc::malformed);
  return cropped(width_mbs * 16, height_map_units * field_factor * 16, crop_unit_x * (crop_left + crop_right),
                 crop_unit_y * (crop_top + crop_bottom));
}

// H.265 7.3.3 profile_tier_level(1, max_sub_layers_minus1): fixed-size fields, skipped.
void skip_hevc_profile_tier_level(BitReader& br, std::uint32_t max_sub_layers_minus1) {
  br.skip(96);  // general profile (88 bits) + general_level_idc
  bool profile_present[8] = {};
  bool level_present[8] = {};
  for (std::uint32_t i = 0; i < max_sub_layers_minus1; ++i) {
    profile_present[i] = br.flag();
    level_present[i] = br.flag();
  }
  if (max_sub_layers_minus1 > 0) br.skip(2 * (8 - max_sub_layers_minus1));  // reserved_zero_2bits
  for (std::uint32_t i = 0; i < max_sub_layers_minus1; ++i) {
    if (profile_present[i]) br.skip(88);
    if (level_present[i]) br.skip(8);
  }
}

// H.265 7.3.2.2.1 seq_parameter_set_rbsp(), up to the conformance window.
Result<Dimensions> parse_hevc_sps(ByteView nal) {
  if (nal.size() < 2) return fail(errc::truncated);
  if (((byte_at(nal, 0) >> 1) & 0x3f) != 33) return fail(errc::malformed);
  const auto rbsp = nal_to_rbsp(nal.subspan(2));
  BitReader br(rbsp);
  br.skip(4);  // sps_video_parameter_set_id
  const std::uint32_t max_sub_layers_minus1 = br.bits(3);
  br.skip(1);  // sps_temporal_id_nesting_flag
  skip_hevc_profile_tier_level(br, max_sub_layers_minus1);
  br.ue();  // sps_seq_parameter_set_id
  const std::uint32_t chroma_format_idc = br.ue();
  if (chroma_format_idc > 3) return fail(errc::malformed);
  bool separate_colour_plane = false;
  if (chroma_format_idc == 3) separate_colour_plane = br.flag();
  const std::uint64_t width = br.ue();
  const std::uint64_t height = br.ue();
  std::uint64_t left = 0, right = 0, top = 0, bottom = 0;
  if (br.flag()) {  // conformance_window_flag
    left = br.ue();
    right = br.ue();
    top = br.ue();
    bottom = br.ue();
  }
  if (auto ec = br.error()) return std::unexpected(ec);
  // H.265 Table 6-1: SubWidthC/SubHeightC are 1 for monochrome, 4:4:4 and separate planes.
  const std::uint32_t chroma_array_type = separate_colour_plane ? 0 : chroma_format_idc;
  const std::uint64_t sub_width_c = (chroma_array_type == 1 || chroma_array_type == 2) ? 2 : 1;
  const std::uint64_t sub_height_c = chroma_array_type == 1 ? 2 : 1;
  return cropped(width, height, sub_width_c * (left + right), sub_height_c * (top + bottom));
}

// AV1 4.10.3 uvlc().
std::uint32_t av1_uvlc(BitReader& br) {
  int zeros = 0;
  while (!br.flag()) {
    if (br.error()) return 0;
    if (++zeros >= 32) return 0xffffffff;
  }
  return br.bits(zeros) + ((std::uint32_t{1} << zeros) - 1);
}

// AV1 5.5.1 sequence_header_obu(), up to max_frame_{width,height}_minus_1.
Result<Dimensions> parse_av1_sequence_header(ByteView payload) {
  BitReader br(payload);
  br.skip(3);  // seq_profile
  br.skip(1);  // still_picture
  const bool reduced_still_picture_header = br.flag();
  if (reduced_still_picture_header) {
    br.skip(5);  // seq_level_idx[0]
  } else {
    bool decoder_model_info_present = false;
    std::uint32_t buffer_delay_length = 0;
    if (br.flag()) {                // timing_info_present_flag
      br.skip(64);                  // num_units_in_display_tick, time_scale
      if (br.flag()) av1_uvlc(br);  // equal_picture_interval: num_ticks_per_picture_minus_1
      decoder_model_info_present = br.flag();
      if (decoder_model_info_present) {
        buffer_delay_length = br.bits(5) + 1;
        br.skip(32 + 5 + 5);  // num_units_in_decoding_tick, removal/presentation time lengths
      }
    }
    const bool initial_display_delay_present = br.flag();
    const std::uint32_t operating_points = br.bits(5) + 1;
    for (std::uint32_t i = 0; i < operating_points; ++i) {
      br.skip(12);                     // operating_point_idc
      if (br.bits(5) > 7) br.skip(1);  // seq_level_idx > 7 carries seq_tier
      if (decoder_model_info_present && br.flag()) br.skip(2 * buffer_delay_length + 1);
      if (initial_display_delay_present && br.flag()) br.skip(4);
    }
  }
  const int width_bits = static_cast<int>(br.bits(4)) + 1;
  const int height_bits = static_cast<int>(br.bits(4)) + 1;
  const std::uint64_t width = std::uint64_t{br.bits(width_bits)} + 1;
  const std::uint64_t height = std::uint64_t{br.bits(height_bits)} + 1;
  if (auto ec = br.error()) return std::unexpected(ec);
  return cropped(width, height, 0, 0);
}

Result<std::uint64_t> read_leb128(ByteReader& r) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) {
    auto b = r.u8();
    if (!b) return std::unexpected(b.error());
    value |= std::uint64_t{*b & 0x7fu} << (7 * i);
    if ((*b & 0x80) == 0) return value;
  }
  return fail(errc::malformed);
}

// First sequence header OBU among configOBUs (AV1 5.3 OBU syntax); nullopt when there is none.
Result<std::optional<Dimensions>> find_av1_sequence_header(ByteView obus) {
  ByteReader r(obus);
  while (!r.empty()) {
    auto header = r.u8();
    if (!header) return std::unexpected(header.error());
    const int obu_type = (*header >> 3) & 0x0f;
    const bool has_extension = (*header & 0x04) != 0;
    const bool has_size = (*header & 0x02) != 0;
    if (has_extension) {
      if (auto s = r.skip(1); !s) return std::unexpected(s.error());
    }
    std::uint64_t size = r.remaining();
    if (has_size) {
      auto declared = read_leb128(r);
      if (!declared) return std::unexpected(declared.error());
      size = *declared;
    }
    if (size > r.remaining()) return fail(errc::truncated);
    auto payload = r.bytes(static_cast<std::size_t>(size));
    if (!payload) return std::unexpected(payload.error());
    if (obu_type == 1) {  // OBU_SEQUENCE_HEADER
      auto dims = parse_av1_sequence_header(*payload);
      if (!dims) return std::unexpected(dims.error());
      return std::optional<Dimensions>(*dims);
    }
  }
  return std::optional<Dimensions>();
}

// ISO/IEC 14496-15 Annex E.3.
std::string hevc_codec_string(std::uint8_t profile_space, bool tier, std::uint8_t profile_idc,
                              std::uint32_t compatibility, ByteView constraints, std::uint8_t level) {
  std::string s = "hvc1.";
  if (profile_space > 0) s += static_cast<char>('A' + profile_space - 1);
  s += std::to_string(profile_idc);
  char hex[16];
  std::uint32_t reversed = 0;  // the flags are written least significant first (E.3)
  for (int i = 0; i < 32; ++i) reversed |= ((compatibility >> i) & 1u) << (31 - i);
  std::snprintf(hex, sizeof hex, ".%X", reversed);
  s += hex;
  s += tier ? ".H" : ".L";
  s += std::to_string(level);
  std::size_t used = constraints.size();
  while (used > 0 && constraints[used - 1] == std::byte{0}) --used;
  for (std::size_t i = 0; i < used; ++i) {
    std::snprintf(hex, sizeof hex, ".%X", byte_at(constraints, i));
    s += hex;
  }
  return s;
}

}  // namespace

Result<VideoConfig> parse_avcc(ByteView record) {
  ByteReader r(record);
  if (record.size() < 6) return fail(errc::truncated);
  VideoConfig cfg;
  cfg.codec = Codec::h264;
  if (*r.u8() != 1) return fail(errc::malformed);  // configurationVersion
  cfg.profile = *r.u8();
  cfg.constraints = *r.u8();
  cfg.level = *r.u8();
  // 14496-15 5.3.3.1.2: lengthSizeMinusOne is 0, 1 or 3.
  const std::uint8_t length_size_minus_one = *r.u8() & 0x03;
  if (length_size_minus_one == 2) return fail(errc::malformed);
  cfg.nalu_length_size = static_cast<std::uint8_t>(length_size_minus_one + 1);
  const std::uint8_t num_sps = *r.u8() & 0x1f;
  std::optional<ByteView> first_sps;
  for (std::uint8_t i = 0; i < num_sps; ++i) {
    auto len = r.u16();
    if (!len) return std::unexpected(len.error());
    auto sps = r.bytes(*len);
    if (!sps) return std::unexpected(sps.error());
    if (!first_sps) first_sps = *sps;
  }
  auto num_pps = r.u8();
  if (!num_pps) return std::unexpected(num_pps.error());
  for (std::uint8_t i = 0; i < *num_pps; ++i) {
    auto len = r.u16();
    if (!len) return std::unexpected(len.error());
    if (auto pps = r.skip(*len); !pps) return std::unexpected(pps.error());
  }
  // Anything after the PPS array (the High profile extension) is optional and not needed here.
  if (first_sps) {
    auto dims = parse_avc_sps(*first_sps);
    if (!dims) return std::unexpected(dims.error());
    cfg.width = dims->width;
    cfg.height = dims->height;
  }
  char codec[16];
  std::snprintf(codec, sizeof codec, "avc1.%02x%02x%02x", cfg.profile, cfg.constraints, cfg.level);
  cfg.codec_string = codec;
  return cfg;
}

Result<VideoConfig> parse_hvcc(ByteView record) {
  constexpr std::size_t kFixedSize = 23;
  if (record.size() < kFixedSize) return fail(errc::truncated);
  if (byte_at(record, 0) != 1) return fail(errc::malformed);  // configurationVersion
  VideoConfig cfg;
  cfg.codec = Codec::hevc;
  const std::uint8_t b1 = byte_at(record, 1);
  const auto profile_space = static_cast<std::uint8_t>(b1 >> 6);
  const bool tier = (b1 & 0x20) != 0;
  cfg.profile = b1 & 0x1f;
  ByteReader fixed(record.subspan(2));
  const std::uint32_t compatibility = *fixed.u32();
  const ByteView constraints = record.subspan(6, 6);
  cfg.level = byte_at(record, 12);
  const std::uint8_t length_size_minus_one = byte_at(record, 21) & 0x03;
  if (length_size_minus_one == 2) return fail(errc::malformed);
  cfg.nalu_length_size = static_cast<std::uint8_t>(length_size_minus_one + 1);

  ByteReader r(record.subspan(kFixedSize - 1));
  const std::uint8_t num_arrays = *r.u8();
  std::optional<ByteView> first_sps;
  for (std::uint8_t a = 0; a < num_arrays; ++a) {
    auto type = r.u8();
    if (!type) return std::unexpected(type.error());
    auto count = r.u16();
    if (!count) return std::unexpected(count.error());
    for (std::uint16_t i = 0; i < *count; ++i) {
      auto len = r.u16();
      if (!len) return std::unexpected(len.error());
      auto nal = r.bytes(*len);
      if (!nal) return std::unexpected(nal.error());
      if ((*type & 0x3f) == 33 && !first_sps) first_sps = *nal;
    }
  }
  if (first_sps) {
    auto dims = parse_hevc_sps(*first_sps);
    if (!dims) return std::unexpected(dims.error());
    cfg.width = dims->width;
    cfg.height = dims->height;
  }
  cfg.codec_string = hevc_codec_string(profile_space, tier, cfg.profile, compatibility, constraints, cfg.level);
  return cfg;
}

Result<VideoConfig> parse_av1c(ByteView record) {
  constexpr std::size_t kFixedSize = 4;
  if (record.size() < kFixedSize) return fail(errc::truncated);
  if (byte_at(record, 0) != 0x81) return fail(errc::malformed);  // marker 1, version 1
  VideoConfig cfg;
  cfg.codec = Codec::av1;
  cfg.profile = byte_at(record, 1) >> 5;
  cfg.level = byte_at(record, 1) & 0x1f;
  const std::uint8_t b2 = byte_at(record, 2);
  const bool tier = (b2 & 0x80) != 0;
  const bool high_bitdepth = (b2 & 0x40) != 0;
  const bool twelve_bit = (b2 & 0x20) != 0;
  const int bit_depth = high_bitdepth ? (cfg.profile == 2 && twelve_bit ? 12 : 10) : 8;
  // configOBUs are optional; without a parsable sequence header the size stays unknown (0).
  if (auto dims = find_av1_sequence_header(record.subspan(kFixedSize)); dims && *dims) {
    cfg.width = (*dims)->width;
    cfg.height = (*dims)->height;
  }
  char codec[24];
  std::snprintf(codec, sizeof codec, "av01.%u.%02u%c.%02d", unsigned{cfg.profile}, unsigned{cfg.level},
                tier ? 'H' : 'M', bit_depth);
  cfg.codec_string = codec;
  return cfg;
}

Result<AudioConfig> parse_audio_specific_config(ByteView asc) {
  // 14496-3 1.6.2.1 and Table 1.16.
  static constexpr std::uint32_t kFrequencies[13] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                                     22050, 16000, 12000, 11025, 8000,  7350};
  BitReader br(asc);
  auto object_type = [&br] {
    const std::uint32_t aot = br.bits(5);
    return aot == 31 ? 32 + br.bits(6) : aot;
  };
  auto frequency = [&br]() -> std::uint32_t {
    const std::uint32_t index = br.bits(4);
    if (index == 15) return br.bits(24);
    return index < 13 ? kFrequencies[index] : 0;
  };
  AudioConfig cfg;
  cfg.codec = Codec::aac;
  const std::uint32_t aot = object_type();
  cfg.sample_rate = frequency();
  cfg.channels = static_cast<std::uint8_t>(br.bits(4));
  std::uint32_t core_aot = aot;
  if (aot == 5 || aot == 29) {
    // Explicit SBR/PS: extension sampling frequency, then the core object type. The timescale
    // stays the core rate; 1024 core samples per frame still hold.
    frequency();
    core_aot = object_type();
  }
  // GASpecificConfig object types: frameLengthFlag selects 960-sample frames.
  constexpr std::array<std::uint32_t, 12> kGeneralAudio = {1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23};
  if (std::ranges::find(kGeneralAudio, core_aot) != kGeneralAudio.end()) {
    cfg.samples_per_frame = br.flag() ? 960 : 1024;
  }
  if (auto ec = br.error()) return std::unexpected(ec);
  if (aot == 0 || cfg.sample_rate == 0) return fail(errc::malformed);
  cfg.object_type = static_cast<std::uint8_t>(aot);
  cfg.codec_string = "mp4a.40." + std::to_string(aot);
  return cfg;
}

Result<AudioConfig> parse_opus_head(ByteView head) {
  // RFC 7845 5.1: magic, version u8, channel count u8, pre-skip u16le, input rate u32le, output
  // gain s16le, mapping family u8; families other than 0 add stream count, coupled count and one
  // mapping byte per channel.
  constexpr std::size_t kFixedSize = 19;
  constexpr std::string_view kMagic = "OpusHead";
  if (head.size() < kFixedSize) return fail(errc::truncated);
  if (!std::equal(kMagic.begin(), kMagic.end(), head.begin(),
                  [](char c, std::byte b) { return static_cast<std::byte>(c) == b; }))
    return fail(errc::malformed);
  const std::uint8_t version = byte_at(head, 8);
  const std::uint8_t channels = byte_at(head, 9);
  const std::uint8_t family = byte_at(head, 18);
  if ((version >> 4) != 0 || channels == 0) return fail(errc::malformed);  // 5.1: major version 0
  if (family == 0 && channels > 2) return fail(errc::malformed);
  if (family != 0 && head.size() < kFixedSize + 2 + channels) return fail(errc::truncated);
  AudioConfig cfg;
  cfg.codec = Codec::opus;
  cfg.sample_rate = 48000;
  cfg.channels = channels;
  cfg.samples_per_frame = 960;  // 20 ms, the common packet; packets say their own duration
  cfg.codec_string = "Opus";
  return cfg;
}

Result<FlacStreamInfo> parse_flac_streaminfo(ByteView record) {
  std::size_t at = 0;
  if (record.size() >= 4 && byte_at(record, 0) == 'f' && byte_at(record, 1) == 'L' && byte_at(record, 2) == 'a' &&
      byte_at(record, 3) == 'C')
    at = 4;
  // A metadata block header (RFC 9639 8.1): last-block flag, type 0 (STREAMINFO), length 34. A bare
  // STREAMINFO cannot start like that: its maximum block size would be 34 with a minimum of 0.
  if (record.size() >= at + 4 + kFlacStreamInfoSize && (byte_at(record, at) & 0x7f) == 0 &&
      byte_at(record, at + 1) == 0 && byte_at(record, at + 2) == 0 && byte_at(record, at + 3) == kFlacStreamInfoSize)
    at += 4;
  else if (at == 4)
    return fail(errc::malformed);  // after the marker, the STREAMINFO block header must follow
  if (record.size() < at + kFlacStreamInfoSize) return fail(errc::truncated);
  // 8.2: min/max block size u16, min/max frame size u24, sample rate u20, channels - 1 u3,
  // bits per sample - 1 u5, total samples u36, MD5.
  BitReader br(record.subspan(at, kFlacStreamInfoSize));
  const std::uint32_t min_block = br.bits(16);
  const std::uint32_t max_block = br.bits(16);
  br.skip(48);
  const std::uint32_t rate = br.bits(20);
  const std::uint32_t channels = br.bits(3) + 1;
  if (auto ec = br.error()) return std::unexpected(ec);
  if (min_block < 16 || max_block < min_block || rate == 0) return fail(errc::malformed);
  FlacStreamInfo info;
  info.offset = at;
  info.config.codec = Codec::flac;
  info.config.sample_rate = rate;
  info.config.channels = static_cast<std::uint8_t>(channels);
  info.config.samples_per_frame = static_cast<std::uint16_t>(max_block);
  info.config.codec_string = "fLaC";
  return info;
}

Result<AudioConfig> parse_ac3_frame_header(ByteView frame) {
  static constexpr std::uint32_t kRates[3] = {48000, 44100, 32000};
  static constexpr std::uint8_t kChannels[8] = {2, 1, 2, 3, 3, 4, 4, 5};  // by acmod (A/52 Table 5.8)
  if (frame.size() < 7) return fail(errc::truncated);
  if (byte_at(frame, 0) != 0x0b || byte_at(frame, 1) != 0x77) return fail(errc::malformed);
  const std::uint32_t bsid = byte_at(frame, 5) >> 3;  // at the same place in both syntaxes
  AudioConfig cfg;
  BitReader br(frame.subspan(2));
  std::uint32_t acmod = 0;
  if (bsid <= 10) {
    // 5.3.1 syncinfo: crc1, fscod, frmsizecod; bsi: bsid, bsmod, acmod, optional mix levels, lfeon.
    br.skip(16);
    const std::uint32_t fscod = br.bits(2);
    const std::uint32_t frmsizecod = br.bits(6);
    br.skip(8);
    acmod = br.bits(3);
    if ((acmod & 1) && acmod != 1) br.skip(2);  // cmixlev
    if (acmod & 4) br.skip(2);                  // surmixlev
    if (acmod == 2) br.skip(2);                 // dsurmod
    if (fscod == 3 || frmsizecod > 37) return fail(errc::malformed);
    cfg.codec = Codec::ac3;
    cfg.sample_rate = kRates[fscod];
    cfg.samples_per_frame = 1536;
    cfg.codec_string = "ac-3";
  } else if (bsid <= 16) {
    // E.1.2.2: strmtyp, substreamid, frmsiz, fscod, fscod2 or numblkscod, acmod, lfeon.
    static constexpr std::uint16_t kBlocks[4] = {1, 2, 3, 6};
    const std::uint32_t strmtyp = br.bits(2);
    br.skip(3 + 11);
    const std::uint32_t fscod = br.bits(2);
    const std::uint32_t code = br.bits(2);
    acmod = br.bits(3);
    if (strmtyp == 3) return fail(errc::malformed);
    if (fscod == 3) {
      if (code == 3) return fail(errc::malformed);
      cfg.sample_rate = kRates[code] / 2;  // half rates: 24, 22.05, 16 kHz
      cfg.samples_per_frame = 256 * 6;
    } else {
      cfg.sample_rate = kRates[fscod];
      cfg.samples_per_frame = static_cast<std::uint16_t>(256 * kBlocks[code]);
    }
    cfg.codec = Codec::eac3;
    cfg.codec_string = "ec-3";
  } else {
    return fail(errc::unsupported);
  }
  const bool lfe = br.flag();
  if (auto ec = br.error()) return std::unexpected(ec);
  cfg.channels = static_cast<std::uint8_t>(kChannels[acmod] + (lfe ? 1 : 0));
  return cfg;
}

}  // namespace sf::media
