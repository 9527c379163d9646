# Canonical order: upper-case currency and country, lower-case email, total and item count
# computed, and the time Weir accepted the order stamped on it.
.currency |= ascii_upcase
| .shipping.country |= ascii_upcase
| .customer.email |= ascii_downcase
| .total = (([.items[] | .qty * .price] | add) * 100 | round / 100)
| .item_count = (.items | length)
| .ingested_at = $received_at
