# Shared helpers of the bench scripts; sourced, never run. Each script sets ROOT first.

# usage: the calling script's header comment (from line 2 to `set -euo`), uncommented.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# median: the median of the numbers on stdin, one per line (the mean of the middle two
# when their count is even).
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# field NAME LINE: the value of `NAME=value` in a space-separated result line (empty when
# the line has none).
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# wait_port PORT: returns once something accepts TCP connections on 127.0.0.1:PORT (10 s).
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# cpu_ticks PID: user plus system clock ticks the process has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# machine_busy_ticks: clock ticks all CPUs have spent busy since boot.
machine_busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
