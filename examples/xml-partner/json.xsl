<?xml version="1.0" encoding="UTF-8"?>
<!--
  Helpers to write JSON from XSLT 1.0, included by acme-to-order.xsl and globex-to-order.xsl.
  (A stylesheet may include files below its own directory, and nothing else.)

  json-string writes its value as a JSON string with weir:json-string(), a function weir adds to
  XSLT (namespace https://weir.dev/xslt): quotes, backslashes and control characters escaped,
  in one native call.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:weir="https://weir.dev/xslt"
    exclude-result-prefixes="weir">

  <xsl:template name="json-string">
    <xsl:param name="value"/>
    <xsl:value-of select="weir:json-string(string($value))"/>
  </xsl:template>

  <!--
    "name":"value", preceded by a comma unless first is true(). The value is whitespace-normalized
    (like an xs:token) unless raw is true(): then it is kept as it is, line breaks included.
  -->
  <xsl:template name="json-member">
    <xsl:param name="name"/>
    <xsl:param name="value"/>
    <xsl:param name="first" select="false()"/>
    <xsl:param name="raw" select="false()"/>
    <xsl:if test="not($first)">,</xsl:if>
    <xsl:value-of select="weir:json-string(string($name))"/>
    <xsl:text>:</xsl:text>
    <xsl:choose>
      <xsl:when test="$raw"><xsl:value-of select="weir:json-string(string($value))"/></xsl:when>
      <xsl:otherwise><xsl:value-of select="weir:json-string(normalize-space($value))"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!--
    A JSON number from a non-negative value with at most two decimals (the XSDs check that):
    12.50 gives 12.5, 89.00 gives 89. format-number rather than string(number()): libxml2
    writes some doubles with 16 digits (8.03 comes out as 8.029999999999999).
  -->
  <xsl:template name="json-number">
    <xsl:param name="value"/>
    <xsl:value-of select="format-number(number($value), '0.##')"/>
  </xsl:template>
</xsl:stylesheet>
