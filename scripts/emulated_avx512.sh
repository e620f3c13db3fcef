#!/usr/bin/env bash
# Runs the test suite's AVX-512 path on a CPU without AVX-512: the release test binary boots
# in Bochs (Debian's bochs, CPU model corei7_skylake_x: AVX-512 F, CD, DQ, BW, VL) under a
# small Linux kernel built here, with LONGATTN_TEST_ISAS=avx512 so each case runs the
# AVX-512 kernels only. Correctness only: emulated time says nothing about speed.
#
#   scripts/emulated_avx512.sh [CASE_PATTERN]    # doctest -tc pattern, default: every case
#
# Slow (Bochs runs about 30 M instructions/s): boot about a minute, most cases 10 s to
# 10 min, the slowest three (long sequences, key chunks, growing row max) far longer, so pass
# a pattern. LONGATTN_EMULATOR_TIMEOUT (seconds, default 7200) bounds the run. Not part of
# scripts/test.sh; run it when the AVX-512 kernels change and no AVX-512 machine is at hand.
# Exits non-zero when a case fails or the guest does not finish.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
pattern=${1:-*}
work=$repo/build/emulated-avx512
mkdir -p "$work"

# The emulator, the guest's tools, and the kernel's source and build tools.
scripts/install-deps.sh bochs bochsbios vgabios busybox-static cpio grub-pc-bin grub-common \
  xorriso mtools linux-source-6.1 flex bison bc libelf-dev
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build/release -j "$(nproc)" --target longattn_tests

# The kernel: Debian's 6.1 source, tinyconfig plus what the test binary needs. Bochs 2.7's
# CPUID gives XSAVE component offsets that disagree with the size it reports; Linux then
# turns XSAVE (and with it AVX) off, so the check is made to warn only.
kernel=$work/bzImage
if [ ! -f "$kernel" ]; then
  src=$work/linux-source-6.1
  [ -d "$src" ] || tar -xf /usr/src/linux-source-6.1.tar.xz -C "$work"
  sed -i 's/^\treturn size == kernel_size;$/\treturn true;  \/* Bochs 2.7 *\//' \
    "$src/arch/x86/kernel/fpu/xstate.c"
  grep -q 'return true;  /\* Bochs 2.7' "$src/arch/x86/kernel/fpu/xstate.c"
  make -C "$src" -s tinyconfig
  cat > "$work/kernel.cfg" << 'EOF'
CONFIG_64BIT=y
CONFIG_PRINTK=y
CONFIG_TTY=y
CONFIG_SERIAL_8250=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_BLK_DEV_INITRD=y
CONFIG_BINFMT_ELF=y
CONFIG_BINFMT_SCRIPT=y
CONFIG_PROC_FS=y
CONFIG_SYSFS=y
CONFIG_DEVTMPFS=y
CONFIG_FUTEX=y
CONFIG_EPOLL=y
CONFIG_SHMEM=y
CONFIG_TMPFS=y
CONFIG_MULTIUSER=y
CONFIG_POSIX_TIMERS=y
CONFIG_TIMERFD=y
CONFIG_EVENTFD=y
CONFIG_SIGNALFD=y
CONFIG_ADVISE_SYSCALLS=y
CONFIG_MEMBARRIER=y
CONFIG_RSEQ=y
CONFIG_HIGH_RES_TIMERS=y
CONFIG_UNIX=y
CONFIG_NET=y
EOF
  (cd "$src" && scripts/kconfig/merge_config.sh -m .config "$work/kernel.cfg" > /dev/null)
  make -C "$src" -s olddefconfig
  make -C "$src" -s -j "$(nproc)" bzImage
  cp "$src/arch/x86/boot/bzImage" "$kernel"
fi

# The guest's root: busybox, the test binary and its libraries, the golden cases, and an
# init that runs each case on its own (a crash names its case) and powers off.
root=$work/root
rm -rf "$root" "$work/iso"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib64,golden,usr/bin,lib/x86_64-linux-gnu} "$work/iso/boot/grub"
cp /bin/busybox "$root/bin/"
for tool in sh mount cat echo grep head tr poweroff sync; do ln -s busybox "$root/bin/$tool"; done
tests=build/release/tests/longattn_tests
cp "$tests" "$root/usr/bin/"
for lib in $(ldd "$tests" | awk '$3 ~ /^\// {print $3}'); do cp -L "$lib" "$root/lib/x86_64-linux-gnu/"; done
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
golden=${LONGATTN_GOLDEN_DIR:-$repo/tests/golden}
[ -d "$golden" ] && cp -r "$golden"/. "$root/golden/"
# doctest splits -tc at commas: a case's own commas become single-character wildcards.
"$tests" --list-test-cases -tc="$pattern" | grep -v -e '^\[doctest\]' -e '^=\+$' | tr ',' '?' \
  > "$root/cases.txt"
cat > "$root/init" << 'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "=== cpu: $(grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -c avx512) avx512 flags"
export LONGATTN_TEST_ISAS=avx512 LONGATTN_GOLDEN_DIR=/golden
cd /tmp
while read -r name; do
  out=$(/usr/bin/longattn_tests -tc="$name" -nv 2>&1)
  if echo "$out" | grep -q "Status: SUCCESS"; then result=passed; else result=FAILED; fi
  echo "=== $result | $(echo "$out" | grep -o 'assertions: *[0-9]*' | tr -s ' ') | $name"
  [ $result = passed ] || echo "$out" | head -80
done < /cases.txt
echo "=== finished"
sync
sleep 2  # lets the console drain before the kernel's own last line
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2> /dev/null) > "$work/iso/boot/initrd"
cp "$kernel" "$work/iso/boot/vmlinuz"
cat > "$work/iso/boot/grub/grub.cfg" << 'EOF'
set timeout=0
serial --unit=0 --speed=115200
terminal_output serial
menuentry "longattn" {
  linux /boot/vmlinuz console=ttyS0,115200 quiet
  initrd /boot/initrd
}
EOF
grub-mkrescue -o "$work/boot.iso" "$work/iso" > /dev/null 2>&1

cat > "$work/bochsrc" << EOF
megs: 2048
cpu: model=corei7_skylake_x, ips=400000000
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
ata0-master: type=cdrom, path=$work/boot.iso, status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev=$work/serial.log
display_library: rfb, options="timeout=0"
log: $work/bochs.log
clock: sync=none
EOF
printf 'continue\nquit\n' > "$work/debugger.rc"  # Debian's bochs starts in its debugger
rm -f "$work/serial.log"
echo "Booting Bochs (AVX-512 CPU); the guest's output goes to $work/serial.log"
timeout "${LONGATTN_EMULATOR_TIMEOUT:-7200}" bochs -q -f "$work/bochsrc" -rc "$work/debugger.rc" \
  > "$work/bochs.out" 2>&1 < /dev/null &
emulator=$!
# The tiny kernel has no ACPI: poweroff halts the guest but leaves Bochs running.
while kill -0 "$emulator" 2> /dev/null; do
  if grep -a -q 'reboot: System halted' "$work/serial.log" 2> /dev/null; then
    pkill -P "$emulator" 2> /dev/null || true
    kill "$emulator" 2> /dev/null || true
  fi
  sleep 5
done
wait "$emulator" || true

grep -a '^===' "$work/serial.log" || true
cases=$(wc -l < "$root/cases.txt")
passed=$(grep -a -c '^=== passed' "$work/serial.log" || true)
echo "$passed of $cases cases passed on the emulated AVX-512 path"
grep -a -q '=== finished' "$work/serial.log" && [ "$passed" -eq "$cases" ]
