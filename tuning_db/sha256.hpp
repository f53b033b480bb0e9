// SHA-256 (FIPS 180-4) of a byte string, as 64 lowercase hex digits. The tuning database stores one with every
// compiled binary and checks it before the binary is loaded, so a damaged row is recompiled instead of run.
#pragma once
#include <cstdint>
#include <span>
#include <string>

namespace swajit::db {

std::string sha256_hex(std::span<const std::uint8_t> bytes);

}  // namespace swajit::db
