<?xml version="1.0" encoding="UTF-8"?>
<!--
  ACME <PurchaseOrder> (see acme-po.xsd) to the canonical order JSON (order.schema.json), the
  same document a JSON partner posts:

    {"id": "PO-…", "customer": {"id", "name", "email", "tier"?}, "currency": "EUR",
     "items": [{"sku", "qty", "price"}, …],
     "shipping": {"street", "city", "zip", "country"},
     "channel": "edi", "notes"?: "…", "ts": "2026-…Z"}

  Weir has validated the input against acme-po.xsd before this runs, so every required value is
  there and every number is a plain decimal (qty an integer, which number() writes exactly;
  prices through format-number, because libxml2 writes some doubles with 16 digits). Values are whitespace-normalized, except the notes,
  which keep their line breaks. Written for speed: one concat per group of members and
  weir:json-string() (a native function of weir's) for every string, no named templates. Line descriptions are not part of the canonical order and are
  dropped. The pipeline's jq step (transform.jq) then runs on the result exactly as on a JSON
  order.
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:weir="https://weir.dev/xslt" exclude-result-prefixes="weir">
  <xsl:output method="text" encoding="UTF-8"/>
  <xsl:strip-space elements="*"/>
  <xsl:template match="/PurchaseOrder">
    <xsl:variable name="c" select="Customer"/>
    <xsl:value-of select="concat('{&quot;id&quot;:', weir:json-string(normalize-space(@number)),
      ',&quot;customer&quot;:{&quot;id&quot;:', weir:json-string(normalize-space($c/@id)),
      ',&quot;name&quot;:', weir:json-string(normalize-space($c/Name)),
      ',&quot;email&quot;:', weir:json-string(normalize-space($c/Email)))"/>
    <xsl:if test="$c/@tier">,"tier":<xsl:value-of select="weir:json-string(normalize-space($c/@tier))"/></xsl:if>
    <xsl:value-of select="concat('},&quot;currency&quot;:', weir:json-string(normalize-space(@currency)), ',&quot;items&quot;:[')"/>
    <xsl:for-each select="Lines/Line">
      <xsl:if test="position() > 1">,</xsl:if>
      <xsl:value-of select="concat('{&quot;sku&quot;:', weir:json-string(normalize-space(@sku)),
        ',&quot;qty&quot;:', number(@qty), ',&quot;price&quot;:', format-number(@price, '0.##'), '}')"/>
    </xsl:for-each>
    <xsl:variable name="s" select="ShipTo"/>
    <xsl:value-of select="concat('],&quot;shipping&quot;:{&quot;street&quot;:', weir:json-string(normalize-space($s/Street)),
      ',&quot;city&quot;:', weir:json-string(normalize-space($s/City)),
      ',&quot;zip&quot;:', weir:json-string(normalize-space($s/PostalCode)),
      ',&quot;country&quot;:', weir:json-string(normalize-space($s/Country)), '}')"/>
    <xsl:choose>
      <xsl:when test="@channel">,"channel":<xsl:value-of select="weir:json-string(normalize-space(@channel))"/></xsl:when>
      <xsl:otherwise>,"channel":"edi"</xsl:otherwise>
    </xsl:choose>
    <xsl:if test="Notes">,"notes":<xsl:value-of select="weir:json-string(string(Notes))"/></xsl:if>
    <xsl:value-of select="concat(',&quot;ts&quot;:', weir:json-string(normalize-space(@issued)), '}')"/>
  </xsl:template>
</xsl:stylesheet>
