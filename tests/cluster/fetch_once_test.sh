#!/usr/bin/env bash
# Fetch once: N nodes (CL_NODES, default 3) read the whole dataset at the same time,
# cold. Every byte must be right, the origin must be read about once in total
# (each block by its owner only), and every node must have received bytes from
# its peers.
source "$(dirname "$0")/lib.sh"

N=${CL_NODES:-3}
cluster_up "$N"
total=$(gen_dataset "$T/data" 64)
md5_ref "$T/data" "$T/ref.json"
note "dataset: $total bytes in $(find "$T/data" -type f | wc -l) files"

# wait_formed: every node sees every other as live (a short wait if no dcctl ring).
wait_formed() {
  local i j rc
  for ((i = 1; i <= N; i++)); do
    for ((j = 1; j <= N; j++)); do
      [ "$i" -eq "$j" ] && continue
      wait_member "$i" "n$j" true 20 && rc=0 || rc=$?
      if [ $rc -eq 2 ]; then note "dcctl has no ring: waiting 3 s for the cluster to form"; sleep 3; return 0; fi
    done
  done
}
wait_formed

# check_bound WHEN: origin bytes summed over nodes <= 1.02 x the dataset.
check_bound() {
  local origin
  origin=$(sum_stat bytes_origin)
  note "$1: origin bytes $origin for a $total-byte dataset ($((origin * 1000 / total))/1000)"
  [ $((origin * 100)) -le $((total * 102)) ] ||
    fail "$1: the nodes read $origin bytes from the origin, more than 1.02 x $total"
}

# Epoch 1, cold, all nodes at once: the owners see concurrent requests for the
# same blocks from their own readers and from both peers.
for ((i = 1; i <= N; i++)); do start_reader "$i" 1 0 "cold$i"; pids[i]=$READER_PID; done
for ((i = 1; i <= N; i++)); do wait_reader "cold$i" "${pids[i]}"; done
check_alive
check_bound "cold epoch"
for ((i = 1; i <= N; i++)); do
  peer=$(node_stat "$i" bytes_peer)
  note "node $i: bytes_peer $peer, bytes_origin $(node_stat "$i" bytes_origin)"
  [ "$peer" -gt 0 ] || fail "node $i received no bytes from its peers"
  crc=$(node_stat "$i" peer_crc_errors 2>/dev/null || echo 0)
  [ "$crc" -eq 0 ] || fail "node $i: $crc CRC errors on a local link"
done

# Epoch 2, warm: copies of others' blocks may have been evicted, but owners keep
# theirs, so the origin is not read again (beyond the 2% slack).
for ((i = 1; i <= N; i++)); do start_reader "$i" 1 0 "warm$i"; pids[i]=$READER_PID; done
for ((i = 1; i <= N; i++)); do wait_reader "warm$i" "${pids[i]}"; done
check_alive
check_bound "after a warm epoch"
# The send path asked for (CL_SEND) is the one that served, and every pin it took
# went back once the kernel was done (pins are released within a few ticks).
case "${CL_SEND:-}" in
  zerocopy) [ "$(sum_stat peer_zc_calls)" -gt 0 ] || fail "send = zerocopy made no MSG_ZEROCOPY call"
            note "zerocopy: $(sum_stat peer_zc_calls) calls, $(sum_stat peer_zc_completed) completed, $(sum_stat peer_zc_copied) reported copied by the kernel, $(sum_stat peer_zc_enobufs) ENOBUFS" ;;
  sendfile) [ "$(sum_stat peer_sendfile_calls)" -gt 0 ] || fail "send = sendfile made no sendfile call" ;;
  copy) [ "$(sum_stat peer_pinned_replies)" -eq 0 ] || fail "send = copy pinned replies" ;;
esac
if [ -n "${CL_SEND:-}" ] && [ "$CL_SEND" != copy ]; then
  [ "$(sum_stat peer_pinned_replies)" -gt 0 ] || fail "send = $CL_SEND sent no reply in place"
  for _ in $(seq 1 100); do [ "$(sum_stat cache_pinned_blocks)" -eq 0 ] && break; sleep 0.05; done
  [ "$(sum_stat cache_pinned_blocks)" -eq 0 ] || fail "$(sum_stat cache_pinned_blocks) blocks still pinned with no transfer going on"
fi
[ "$(sum_stat cache_bad_unpins)" -eq 0 ] || fail "a pin was released twice"
note "fetch once ok"
