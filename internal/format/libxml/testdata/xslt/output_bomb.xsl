<?xml version="1.0"?>
<!-- About 1 MB of output (1000 x 1000 characters). -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:str="http://exslt.org/strings">
  <xsl:output method="text"/>
  <xsl:variable name="n" select="str:tokenize(str:padding(1000, 'a'), '')"/>
  <xsl:variable name="line" select="str:padding(1000, 'x')"/>
  <xsl:template match="/">
    <xsl:for-each select="$n"><xsl:value-of select="$line"/></xsl:for-each>
  </xsl:template>
</xsl:stylesheet>
