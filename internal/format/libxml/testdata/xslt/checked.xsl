<?xml version="1.0"?>
<!-- Summarises an order; refuses (xsl:message terminate) an order marked fail. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/order[@fail]" priority="1">
    <xsl:message terminate="yes">refused <xsl:value-of select="id"/></xsl:message>
  </xsl:template>
  <xsl:template match="/order">
    <done id="{id}" items="{count(item)}"/>
  </xsl:template>
</xsl:stylesheet>
