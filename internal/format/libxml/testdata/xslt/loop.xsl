<?xml version="1.0"?>
<!-- No recursion at all: four nested xsl:for-each over 1000 nodes made with EXSLT, 10^12
     iterations. Only the transform's time limit stops it. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:str="http://exslt.org/strings">
  <xsl:variable name="n" select="str:tokenize(str:padding(1000, 'a'), '')"/>
  <xsl:template match="/">
    <out>
      <xsl:for-each select="$n">
        <xsl:for-each select="$n">
          <xsl:for-each select="$n">
            <xsl:for-each select="$n">
              <xsl:if test="false()"><never/></xsl:if>
            </xsl:for-each>
          </xsl:for-each>
        </xsl:for-each>
      </xsl:for-each>
    </out>
  </xsl:template>
</xsl:stylesheet>
