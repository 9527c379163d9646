# Canonical order: upper-case currency and country, lower-case email, total and item count
# computed, and the time Weir accepted the order stamped on it.
. + {
  currency: (.currency | ascii_upcase),
  customer: (.customer + {email: (.customer.email | ascii_downcase)}),
  shipping: (.shipping + {country: (.shipping.country | ascii_upcase)}),
  total: (([.items[] | .qty * .price] | add) * 100 | round / 100),
  item_count: (.items | length),
  ingested_at: $received_at
}
