<?xml version="1.0" encoding="UTF-8"?>
<!--
  Globex <g:Order> (see globex-order.xsd) to the canonical order JSON (order.schema.json): the
  same shape acme-to-order.xsl writes and a JSON partner posts.

  Differences this stylesheet absorbs: a namespace, child elements instead of attributes, the
  address in one to three lines (joined with ", "), and unit prices in cents (divided by 100).
  Weir has validated the input against globex-order.xsd before this runs.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:g="urn:example:globex:order:2"
    exclude-result-prefixes="g">
  <xsl:include href="json.xsl"/>
  <xsl:output method="text" encoding="UTF-8"/>
  <xsl:strip-space elements="*"/>

  <xsl:template match="/g:Order">
    <xsl:variable name="h" select="g:Header"/>
    <xsl:variable name="b" select="g:Buyer"/>
    <xsl:variable name="to" select="g:DeliverTo"/>

    <xsl:text>{</xsl:text>
    <xsl:call-template name="json-member">
      <xsl:with-param name="name" select="'id'"/>
      <xsl:with-param name="value" select="$h/g:OrderRef"/>
      <xsl:with-param name="first" select="true()"/>
    </xsl:call-template>

    <xsl:text>,"customer":{</xsl:text>
    <xsl:call-template name="json-member">
      <xsl:with-param name="name" select="'id'"/>
      <xsl:with-param name="value" select="$b/g:AccountId"/>
      <xsl:with-param name="first" select="true()"/>
    </xsl:call-template>
    <xsl:call-template name="json-member">
      <xsl:with-param name="name" select="'name'"/>
      <xsl:with-param name="value" select="$b/g:Contact/g:FullName"/>
    </xsl:call-template>
    <xsl:call-template name="json-member">
      <xsl:with-param name="name" select="'email'"/>
      <xsl:with-param name="value" select="$b/g:Contact/g:Email"/>
    </xsl:call-template>
    <xsl:if test="$b/g:Segment">
      <xsl:call-template name="json-member">
        <xsl:with-param name="name" select="'tier'"/>
        <xsl:with-param name="value" select="$b/g:Segment"/>
      </xsl:call-template>
    </xsl:if>
    <xsl:text>}</xsl:text>

    <xsl:call-template name="json-member">
      <xsl:with-param name="name" select="'currency'"/>
      <xsl:with-param name="value" select="$h/g:Currency"/>
    </xsl:call-template>

    <xsl:text>,"items":[</xsl:text>
    <xsl:for-each select="g:Items/g:Item">
      <xsl:if test="position() > 1">,</xsl:if>
      <xsl:text>{</xsl:text>
      <xsl:call-template name="json-member">
        <xsl:with-param name="name" select="'sku'"/>
        <xsl:with-param name="value" select="g:ProductCode"/>
        <xsl:with-param name="first" select="true()"/>
      </xsl:call-template>
      <xsl:text>,"qty":</xsl:text>
      <xsl:call-template name="json-number">
        <xsl:with-param name="value" select="g:Quantity"/>
      </xsl:call-template>
      <xsl:text>,"price":</xsl:text>
      <xsl:call-template name="json-number">
        <xsl:with-param name="value" select="number(g:UnitPriceCents) div 100"/>
      </xsl:call-template>
      <xsl:text>}</xsl:text>
    </xsl:for-each>
    <xsl:text>]</xsl:text>

    <xsl:text>,"shipping":{</xsl:text>
    <xsl:call-template name="json-member">
      <xsl:with-param name="name" select="'street'"/>
      <xsl:with-param name="value">
        <xsl:for-each select="$to/g:AddressLine">
          <xsl:if test="position() > 1">, </xsl:if>
          <xsl:value-of select="normalize-space(.)"/>
        </xsl:for-each>
      </xsl:with-param>
      <xsl:with-param name="first" select="true()"/>
    </xsl:call-template>
    <xsl:call-template name="json-member">
      <xsl:with-param name="name" select="'city'"/>
      <xsl:with-param name="value" select="$to/g:Town"/>
    </xsl:call-template>
    <xsl:call-template name="json-member">
      <xsl:with-param name="name" select="'zip'"/>
      <xsl:with-param name="value" select="$to/g:Postcode"/>
    </xsl:call-template>
    <xsl:call-template name="json-member">
      <xsl:with-param name="name" select="'country'"/>
      <xsl:with-param name="value" select="$to/g:CountryCode"/>
    </xsl:call-template>
    <xsl:text>}</xsl:text>

    <xsl:call-template name="json-member">
      <xsl:with-param name="name" select="'channel'"/>
      <xsl:with-param name="value">
        <xsl:choose>
          <xsl:when test="$h/g:SalesChannel"><xsl:value-of select="$h/g:SalesChannel"/></xsl:when>
          <xsl:otherwise>edi</xsl:otherwise>
        </xsl:choose>
      </xsl:with-param>
    </xsl:call-template>
    <xsl:if test="g:Comment">
      <xsl:call-template name="json-member">
        <xsl:with-param name="name" select="'notes'"/>
        <xsl:with-param name="value" select="g:Comment"/>
        <xsl:with-param name="raw" select="true()"/>
      </xsl:call-template>
    </xsl:if>
    <xsl:call-template name="json-member">
      <xsl:with-param name="name" select="'ts'"/>
      <xsl:with-param name="value" select="$h/g:Created"/>
    </xsl:call-template>
    <xsl:text>}</xsl:text>
  </xsl:template>
</xsl:stylesheet>
